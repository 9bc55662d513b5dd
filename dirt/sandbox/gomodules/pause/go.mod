module github.com/dirt-project/dirt/dirt/sandbox/gomodules/pause

go 1.26.0
