#!/usr/bin/env bash
# Install the Debian packages dirt's sandbox and tests use, only when missing:
# Prometheus + promtool and Alertmanager (alerting), Chromium (report test).
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: present (prometheus, promtool, prometheus-alertmanager, chromium)"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "system packages: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian's packages would start their own services where an init system runs; the
# sandbox starts its own processes on free ports, so keep the packaged ones off.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ -n "$made_policy" ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
echo "system packages: installed ${need[*]}"
