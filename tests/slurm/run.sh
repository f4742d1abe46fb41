#!/usr/bin/env bash
# Real-cluster test (make test-slurm, CI): the demo workflow through
# `snakemake --profile profiles/slurm` on a one-node SLURM cluster started here, compared
# table by table with a plain local run.
#
#   tests/slurm/run.sh            # needs root for apt-get (slurm-wlm, munge) unless installed
#
# Environment: SNAKEMAKE (default .venv/bin/snakemake), PYTHON (default .venv/bin/python),
# HAPEXP_SLURM_CONFIG (config overlay for both runs, default tests/slurm/config.yaml),
# HAPEXP_SLURM_WORK (default: a new temp dir; kept on failure for inspection),
# HAPEXP_SLURM_TARGETS (default: the workflow's default target), HAPEXP_SLURM_KEEP=1 keeps
# the work dir on success too, HAPEXP_SLURM_LOCAL=DIR uses a finished local run of the same
# tree in DIR as the reference instead of making one.
#
# What it proves: the profile parses and is accepted by snakemake-executor-plugin-slurm
# and sbatch (resources, groups, attempt-scaled memory); every job of the run went
# through SLURM (a job id and a SLURM log per job); the results equal the local run's.
# What it cannot: GPUs (the node has none: gpu is overridden to 0, see
# tests/slurm/profile/config.yaml) and conda envs (no conda channels in CI: jobs run in
# the venv; the env files are checked by tests/test_envs.py).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
SNAKEMAKE=${SNAKEMAKE:-$repo/.venv/bin/snakemake}
PYTHON=${PYTHON:-$repo/.venv/bin/python}
[ -x "$SNAKEMAKE" ] || SNAKEMAKE=$(command -v snakemake)
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
read -r -a targets <<<"${HAPEXP_SLURM_TARGETS:-}"
# Lighter elastic net and fewer chunks for CI time (see the file); both runs use it.
configfile=(--configfile config/config.yaml "${HAPEXP_SLURM_CONFIG:-tests/slurm/config.yaml}")

work=${HAPEXP_SLURM_WORK:-$(mktemp -d /tmp/hapexp-slurm-test.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cluster=$work/cluster
start_time=$(date +%s)
ok=0

log() { echo "[test-slurm $(($(date +%s) - start_time))s] $*"; }

cleanup() {
	"$here/cluster.sh" stop "$cluster" || true
	if [ "$ok" = 1 ] && [ "${HAPEXP_SLURM_KEEP:-0}" != 1 ]; then
		rm -rf "$work"
	else
		echo "test-slurm: work dir kept for inspection: $work" >&2
	fi
}

# A clean copy of the workflow (no results, no venv) for each run.
copy_repo() {
	mkdir -p "$1"
	if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
			(cd "$repo" && xargs -0 tar --no-recursion -cf - --ignore-failed-read 2>/dev/null) |
			tar -xf - -C "$1"
	else
		tar -C "$repo" --exclude=./.venv --exclude=./.git -cf - . | tar -xf - -C "$1"
	fi
	rm -rf "$1/results" "$1/resources/demo" "$1/logs" "$1/benchmarks" "$1/.snakemake"
}

"$here/cluster.sh" install
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap stops the daemons
"$here/cluster.sh" start "$cluster"
eval "$("$here/cluster.sh" env "$cluster")"
sinfo

local_dir=${HAPEXP_SLURM_LOCAL:-$work/local}
if [ -n "${HAPEXP_SLURM_LOCAL:-}" ]; then
	log "local reference: $local_dir (HAPEXP_SLURM_LOCAL)"
else
	log "local reference run (snakemake --cores 2)"
	copy_repo "$local_dir"
	(cd "$local_dir" && nice "$SNAKEMAKE" --cores 2 "${configfile[@]}" "${targets[@]}" >"$work/local.log" 2>&1) || {
		tail -n 50 "$work/local.log"
		echo "test-slurm: the local run failed (not a SLURM problem); log: $work/local.log" >&2
		exit 1
	}
fi

log "SLURM run (snakemake --profile profiles/slurm + test overlay)"
copy_repo "$work/slurm"
"$PYTHON" "$here/make_profile.py" "$work/profile"
# profiles/default (minimal) is layered on top, as in a user's run.
(cd "$work/slurm" && "$SNAKEMAKE" --profile "$work/profile" "${configfile[@]}" "${targets[@]}" >"$work/slurm.log" 2>&1) || {
	tail -n 80 "$work/slurm.log"
	echo "--- slurmctld log:" >&2
	tail -n 20 "$cluster/log/slurmctld.log" >&2
	echo "test-slurm: the SLURM run failed; log: $work/slurm.log" >&2
	exit 1
}
log "SLURM run done"

log "checking that the jobs went through SLURM and the results match the local run"
"$PYTHON" "$here/check.py" --local "$local_dir" --slurm "$work/slurm" --log "$work/slurm.log" \
	--slurmctld-log "$cluster/log/slurmctld.log"
ok=1
log "passed"
