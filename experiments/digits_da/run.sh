#!/usr/bin/env bash
# Every run of the digits DA table, at the default recipe of experiment=digits_{m2u,u2m}
# (no other override), 3 seeds. Resumable: a completed run dir is returned, not retrained, so
# re-running this script after a stop finishes what is missing. Then the table and the plot.
# The seeds of one (direction, method) train as one vmapped program (`trainer.seeds`), each
# into its own ordinary run dir <method>/seed<s>, equal to a separate run of that seed.
#   bash experiments/digits_da/run.sh            # SEEDS=0,1,2 by default
#   METHOD_GROUPS=source_only,dann,cdan bash experiments/digits_da/run.sh   # some methods only
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-experiments/digits_da/runs}
SEEDS=${SEEDS:-0,1,2}
failed=0
# In order of importance, so a stopped session leaves the rows that matter most.
METHOD_GROUPS=${METHOD_GROUPS:-"source_only,dann,cdan mcc,mdd,coral,mmd target_only,domain_confusion \
entropy_min,self_training"}
for methods in $METHOD_GROUPS; do
  for d in m2u u2m; do
    $PY -m jtl.train -m experiment=digits_$d method=$methods "trainer.seeds=[$SEEDS]" \
      trainer.progress=false hydra.sweep.dir=$OUT/$d 'hydra.sweep.subdir=${method.name}' \
      || failed=1
  done
done
$PY experiments/digits_da/table.py $OUT
exit $failed
