#!/usr/bin/env bash
# Install the Debian packages dirt's sandbox and tests use, only when missing:
# Prometheus + promtool, Alertmanager (alerting), the Pushgateway (pushed run metrics),
# Chromium (report test), and for the sandbox's real node: containerd, runc, the CNI
# plugins, busybox-static (its images), openssl; debootstrap (the runner image's root
# filesystem); faketime, systemd-analyze and shellcheck (scheduled game days at other moments, and
# the exported timers and workflows checked); docker.io and jq (real kind clusters).
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
# the run history's PostgreSQL tests start their own server (initdb into a temporary folder)
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || need+=(runc)
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
# the static build: the image's only binary must run without a C library
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the runner image (dirt image build): a Debian root filesystem
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# scheduled game days tested at other moments than now (libfaketime), and their timers (systemd-analyze)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || command -v faketime >/dev/null 2>&1 || need+=(faketime)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# the exported workflows' shell steps, checked by actionlint
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)  # a fleet's entry point
# real kind clusters: the Docker engine (dirt starts dockerd itself when nothing runs it) and jq for its runc wrapper
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v jq >/dev/null 2>&1 || need+=(jq)

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: present (prometheus, promtool, prometheus-alertmanager, prometheus-pushgateway, chromium," \
       "postgresql, containerd, runc, containernetworking-plugins, busybox-static, openssl, debootstrap, faketime," \
       "systemd-analyze, shellcheck, haproxy, docker.io, jq)"
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
# ... and would enable them for the next boot, listening on every address: keep off the
# servers installed just now (the sandbox runs its own, on 127.0.0.1).
if [ -d /run/systemd/system ]; then
  for unit in prometheus prometheus-alertmanager prometheus-pushgateway postgresql haproxy docker containerd; do
    case " ${need[*]} " in *" $unit "*) $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true ;; esac
  done
fi
echo "system packages: installed ${need[*]}"
