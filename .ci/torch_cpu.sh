#!/usr/bin/env bash
# .ci/torch_cpu.sh PIP: install torch 2.13.0's CPU build (about 0.2 GB) with the given pip, where it can be found:
# pip's configured sources, or a local wheel folder ($STREAMAVATAR_WHEELS, else /opt/wheels, where our machines keep
# the file). CI computes on CPUs, and the build that the project's torch==2.13.0 picks by itself is a CUDA one
# (several GB of libraries per environment, five environments per CI run). Where no CPU build is found, nothing is
# installed here and the pin brings the default build.
pip=$1
wheels=${STREAMAVATAR_WHEELS:-/opt/wheels}
if "$pip" install -q "torch==2.13.0+cpu" > /dev/null 2>&1; then
  exit 0
fi
if [ -d "$wheels" ] && "$pip" install -q --find-links "$wheels" "torch==2.13.0+cpu" > /dev/null 2>&1; then
  exit 0
fi
echo "no CPU build of torch 2.13.0 found (pip's sources, $wheels); the default build will be installed"
