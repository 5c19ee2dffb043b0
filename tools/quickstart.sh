#!/usr/bin/env bash
# The quickstart: sets everything up, prepares a real English corpus, trains a small
# byte-level Mamba-2 language model on the CPU (a few minutes on 2 cores) and samples from it.
#
# Corpus: the quotations, jokes and sayings of Debian's `fortunes` package (~2.5 MB of
# English text, installed by this script), one document per fortune.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

if [ ! -d /usr/share/games/fortunes ]; then
  echo "quickstart: installing Debian's 'fortunes' package (the corpus)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq fortunes >/dev/null
fi

ssm=build/tools/ssm
if [ ! -f data_cache/quickstart/dataset.json ]; then
  # Fortune files separate entries with a line holding a single '%': turn those into blank
  # lines, the document separator of `ssm data prepare`. ASCII-art files are skipped.
  mkdir -p data_cache/quickstart-text
  for f in /usr/share/games/fortunes/*; do
    case "$f" in *.dat|*.u8|*art*) continue ;; esac
    [ -f "$f" ] || continue
    sed -e 's/^%$//' "$f" > "data_cache/quickstart-text/$(basename "$f").txt"
  done
  "$ssm" data prepare data_cache/quickstart-text --out data_cache/quickstart --tokenizer byte --val-fraction 0.05
fi

"$ssm" train recipes/quickstart.yaml "$@"
echo
echo "--- sample (ssm generate runs/quickstart --prompt 'The meaning of life is') ---"
"$ssm" generate runs/quickstart --prompt "The meaning of life is" --max-tokens 300 --temperature 0.8 --top-k 40 --seed 7
