#!/usr/bin/env bash
# Runs the README's Slurm array job on a one-node Slurm cluster started here, with a failure,
# and checks the union of its shards against an unsharded run.
#
#   bash scripts/scaleout/slurm_local.sh [PICTURES=240]
#
# 1. Installs Slurm and MUNGE (Debian's slurm-wlm, munge) and Pillow (python3-pil) if missing,
#    builds effdense (release; or takes EFFDENSE_BIN) and puts it first on PATH for the jobs.
# 2. Starts munged, slurmctld and slurmd with their own slurm.conf (one node, 2 CPUs, no cgroups)
#    under a temporary folder; stops them on exit, whatever happens.
# 3. Makes a corpus of PICTURES pictures (scripts/scaleout/make_corpus.py) and runs it unsharded.
# 4. Submits the README's job script (extracted from README.md, not a copy) as
#    `sbatch --array=0-3 --cpus-per-task=1 --export=ALL,SHARDS=4`, cancels task 2 with `scancel`
#    once it has written some results, checks that it stopped short, resubmits index 2 alone.
# 5. compare_runs.py: one line per picture across the four parts, equal to the unsharded run's,
#    the same output files byte for byte, no temporary files.
# Needs root (or sudo) for the daemons. Model: the seeded random tf_efficientdet_d0 fixture.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
pictures=${1:-240}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
# Pillow for the corpus: the python3 on PATH if it has it, else Debian's with python3-pil.
py=python3
if ! python3 -c "import PIL" 2>/dev/null; then
    py=/usr/bin/python3
    /usr/bin/python3 -c "import PIL" 2>/dev/null || need+=(python3-pil)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "slurm_local: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# EFFDENSE_BIN: an effdense already built (else it is built here, release).
if [ -z "${EFFDENSE_BIN:-}" ]; then
    swift build -c release --product effdense 2>&1 | tail -1
    EFFDENSE_BIN="$(swift build -c release --show-bin-path)/effdense"
fi
bin_dir=$(mktemp -d /tmp/effdense-bin.XXXXXX)
ln -s "$(realpath "$EFFDENSE_BIN")" "$bin_dir/effdense"
export PATH="$bin_dir:$PATH"
weights="$repo/Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth"

work=$(mktemp -d /tmp/effdense-slurm.XXXXXX)
chmod 755 "$work"
echo "slurm_local: working in $work"
node=$(hostname -s)
conf="$work/slurm.conf"
mkdir -p "$work/state" "$work/spool" "$work/logs"
cat > "$conf" <<CONF
ClusterName=effdense-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=10
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/logs/slurmctld.log
SlurmdLogFile=$work/logs/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"

started_munge=0
stop_daemons() {
    [ -f "$work/slurmd.pid" ] && $sudo kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
    [ -f "$work/slurmctld.pid" ] && $sudo kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
    if [ "$started_munge" = 1 ] && [ -f /run/munge/munged.pid ]; then $sudo kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
}
trap stop_daemons EXIT

if ! munge -n >/dev/null 2>&1; then
    $sudo mkdir -p /run/munge && $sudo chown munge:munge /run/munge
    [ -f /etc/munge/munge.key ] || $sudo -u munge mungekey --create
    $sudo runuser -u munge -- /usr/sbin/munged
    started_munge=1
fi
munge -n | unmunge >/dev/null
$sudo env SLURM_CONF="$conf" slurmctld -c
$sudo env SLURM_CONF="$conf" slurmd -c
for _ in $(seq 60); do
    sinfo -h -o "%t" 2>/dev/null | grep -qx "idle" && break
    sleep 1
done
sinfo

# The README's job script, verbatim.
job="$work/effdense-array.sh"
awk '/<!-- slurm-array-job/ {found=1; next} found && /^```sh$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' README.md > "$job"
grep -q "^exec effdense detect" "$job" || { echo "slurm_local: no job script found in README.md" >&2; exit 1; }
echo "slurm_local: the README's job script:"; sed 's/^/    /' "$job"

photos="$work/photos"
"$py" scripts/scaleout/make_corpus.py "$photos" "$pictures"
echo "slurm_local: the unsharded run"
effdense detect "$photos" --recursive --out-dir "$work/reference" --threads 1 --json "$work/reference.jsonl" --weights "$weights" 2>&1 >/dev/null | tail -1

out="$work/out"
mkdir -p "$out"
submit() { sbatch --parsable --cpus-per-task=1 --output="$work/logs/job-%A-task-%a.log" --export=ALL,SHARDS=4 "$@" "$job" "$photos" "$out" --weights "$weights"; }
array=$(submit --array=0-3)
echo "slurm_local: submitted array job $array (tasks 0-3, 4 shards, 1 CPU each: two run at once)"
state() { squeue -h -j "$1" -o "%T" 2>/dev/null | head -1; }
# Cancel task 2 once it has written some lines (its shard holds about a quarter of the corpus).
for _ in $(seq 600); do
    lines=0
    [ -f "$out/part-2.jsonl" ] && lines=$(wc -l < "$out/part-2.jsonl")
    [ "$lines" -ge 10 ] && [ "$(state "${array}_2")" = RUNNING ] && break
    sleep 0.2
done
scancel "${array}_2"
echo "slurm_local: cancelled task ${array}_2 after $lines lines"
while squeue -h -j "$array" 2>/dev/null | grep -q .; do sleep 1; done
cancelled_lines=$(wc -l < "$out/part-2.jsonl")
expected_lines=$("$py" - "$work/reference.jsonl" <<'PY'
import json, sys
# The pictures of shard 2/4: the FNV-1a hash of the path relative to the folder given.
def fnv(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
root = sys.argv[1].rsplit("/", 1)[0] + "/photos/"
lines = [json.loads(l) for l in open(sys.argv[1])]
print(sum(1 for l in lines if fnv(l["image"][len(root):]) % 4 == 2))
PY
)
echo "slurm_local: task 2 stopped with $cancelled_lines of its $expected_lines lines"
[ "$cancelled_lines" -lt "$expected_lines" ] || { echo "slurm_local: task 2 was not cancelled midway" >&2; exit 1; }
if ls -a "$out" | grep -q effdense-partial; then echo "slurm_local: temporary files left after scancel" >&2; exit 1; fi

resubmitted=$(submit --array=2)
echo "slurm_local: resubmitted index 2 as job $resubmitted"
while squeue -h -j "$resubmitted" 2>/dev/null | grep -q .; do sleep 1; done
# Every task's log ends in its summary line (a whole line: see --open-mode in the README).
for log in "$work/logs/job-$array-task-0.log" "$work/logs/job-$array-task-1.log" "$work/logs/job-$array-task-3.log" "$work/logs/job-$resubmitted-task-2.log"; do
    summary=$(grep "^effdense: " "$log" || true)
    [ -n "$summary" ] || { echo "slurm_local: no summary line in $log" >&2; exit 1; }
    echo "    $(basename "$log"): $summary"
done

"$py" scripts/scaleout/compare_runs.py "$work/reference.jsonl" "$work/reference" "$out" "$out"/part-{0,1,2,3}.jsonl
echo "slurm_local: passed ($work)"
