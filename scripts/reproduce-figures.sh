#!/usr/bin/env bash
# Reproduces the seed paper's three figures (matching bases, error rate and
# "eavesdropper detected" per observation, for 15 observations of 20 qubits
# with Eve in observations 1, 5, 8, 10 and 12), side by side with qward's
# statistical rule, plus the probability of detecting a full intercept-resend
# Eve against the number of compared bits; and qward's own sweeps.
#
# Needs a TrueType font for the plot text: Debian package fonts-dejavu-core
# (or QWARD_PLOT_FONT=/path/to/font.ttf). Deterministic: fixed seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-figures}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/qward/target}"
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "${QWARD_PLOT_FONT:-}" ]; then
    echo "installing fonts-dejavu-core for plot text" >&2
    apt-get install -y fonts-dejavu-core >/dev/null
fi
cargo build -p qward-node --bin qward
QWARD="$CARGO_TARGET_DIR/debug/qward"
"$QWARD" qkd paper --out "$OUT/paper" --seed 1
"$QWARD" qkd sweep --over distance --out "$OUT/distance" --qubits 1000000 --max-distance-km 150 --points 16 --seed 1
"$QWARD" qkd sweep --over eve --out "$OUT/eve" --qubits 200000 --points 11 --seed 1
"$QWARD" qkd sweep --over qber --out "$OUT/cascade" --points 10 --trials 20 --seed 1
echo "figures in $OUT/"
