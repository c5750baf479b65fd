# Sourced by run.sh and gpu.sh (with $OUT, $dir and $seed set): the commands both share.
PY=${PY:-.venv/bin/python}
QUIET="trainer.progress=false trainer.tensorboard=false"

# train <run dir> [overrides...]: one run of the digits recipe for $dir and $seed (resumable).
train() {
  local run=$1; shift
  $PY -m jtl.train experiment=digits_$dir seed=$seed "$@" $QUIET hydra.run.dir=$run
}

# adapt <source run> <name> <method> [overrides...]: a source-free run from that source model,
# into $OUT/$dir/<name>/seed$seed.
adapt() {
  local src=$1 name=$2 method=$3; shift 3
  train "$OUT/$dir/$name/seed$seed" source=null init_from="$src" method="$method" "$@"
}

# statistics <source run>: the methods without a gradient step, each with its yaml's values.
statistics() {
  for m in adabn bn_adapt t3a; do adapt "$1" $m $m; done
}
