#!/bin/bash
# Regenerates the organism figures of docs/circuits.md with this build and prints each beside the command
# that measured it (about a minute on 2 cores). Usage: docs/figures.sh [path/to/ccc]
# The texts are make-probe's (seed 0) in a temporary directory; nothing in the checkout is written.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ccc=${1:-$root/build/experiments/ccc}
attn2=$root/data/models/ccc-attn2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$ccc" make-probe -o rep.txt --norep norep.txt > /dev/null
show() {  # show 'description' jq-free python expression, then the command
  local what=$1 expr=$2; shift 2
  local out
  out=$("$@" 2> /dev/null)
  printf '%-44s %s\n    $ %s\n' "$what" "$(printf '%s' "$out" | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)")" "${*/#$ccc/ccc}"
}
echo "## path patching (zero mode), delta_bits_per_byte [95% CI]"
for p in "0.2 logits" "0.2 1.2" "0.2 1.3" "0.1 1.2" "0.0 1.2" "0.3 1.2" "1.2 logits" "1.3 logits"; do
  set -- $p
  show "$1 -> $2" "'%+.3f [%+.3f, %+.3f]' % (j['delta_bits_per_byte'], j['ci_low'], j['ci_high'])" \
    "$ccc" patch rep.txt -m "$attn2" --sender "$1" --receiver "$2" --json -q
done
echo "## paired activation patching over the second copies (noising share / denoising recovered)"
show "effect of the corruption (bits/byte)" "'%+.3f [%+.3f, %+.3f]' % (j['effect_bits_per_byte'], j['effect_ci_low'], j['effect_ci_high'])" \
  "$ccc" patch -m "$attn2" --clean rep.txt --corrupt rep-corrupt.txt --positions repeated --json -q
show "per head: noising dbpb (share), denoising dbpb (recovered)" \
  "'; '.join('%s %+.3f (%.3f), %+.3f (%.3f)' % (c['component'], c['noising']['delta_bits_per_byte'], c['noising']['share_of_effect'], c['denoising']['delta_bits_per_byte'], c['denoising']['recovered']) for c in j['components'])" \
  "$ccc" patch -m "$attn2" --clean rep.txt --corrupt rep-corrupt.txt --positions repeated --json -q
echo "## discovery"
show "acdc, tau 0.05" "'%s; clean %.3f, circuit %.3f, all ablated %.3f bits/byte, faithfulness %.3f' % (','.join(j['components']), j['clean_bits_per_byte'], j['circuit_bits_per_byte'], j['ablated_all_bits_per_byte'], j['faithfulness'])" \
  "$ccc" discover -m "$attn2" rep.txt --threshold 0.05 --json -q
show "acdc, tau 0.05, edges kept" "'%d of %d: ' % (j['edges_kept'], len(j['edges'])) + ', '.join('%s->%s %+.3f' % (e['sender'], e['receiver'], e['delta_bits_per_byte']) for e in j['edges'] if e['kept'])" \
  "$ccc" discover -m "$attn2" rep.txt --threshold 0.05 --edges --json -q
show "corrupted-input acdc over the second copies" "'%s; clean %.3f, circuit %.3f, all corrupted %.3f, faithfulness %.3f' % (','.join(j['components']), j['clean_bits_per_byte'], j['circuit_bits_per_byte'], j['ablated_all_bits_per_byte'], j['faithfulness'])" \
  "$ccc" discover -m "$attn2" rep.txt --corrupt rep-corrupt.txt --positions repeated --threshold 0.05 --json -q
