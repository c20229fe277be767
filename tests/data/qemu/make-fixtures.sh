#!/usr/bin/env bash
# Regenerate the real-QEMU migration fixtures in this directory.
# Needs: qemu-system-x86_64 10.0.x (Debian bookworm-backports), python3 (stdlib).
# Scratch files (uncompressed saves, QMP sockets, QEMU logs) go to $SCRATCH.
# Usage: tests/data/qemu/make-fixtures.sh [--accel kvm|tcg]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRATCH="${SCRATCH:-/tmp/qemufix}"
mkdir -p "$SCRATCH"
qemu-system-x86_64 --version | head -1
case "$(qemu-system-x86_64 --version | head -1)" in
  *"version 10."*) ;;
  *) echo "warning: fixtures were made with QEMU 10.0.x" >&2 ;;
esac
start=$(date +%s.%N)
python3 "$HERE/make_fixtures.py" --scratch "$SCRATCH" --out "$HERE" "$@"
end=$(date +%s.%N)
echo "done in $(python3 -c "print(round($end-$start,1))") s"
ls -l "$HERE"
