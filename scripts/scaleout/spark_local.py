#!/usr/bin/env python3
"""Runs effdense under Spark's RDD.pipe in local mode, with a failing task, and checks the
collected lines against an unsharded run.

    python3 scripts/scaleout/spark_local.py [PICTURES=240]

1. Makes a virtual environment (EFFDENSE_SCALEOUT_VENV, default ~/.cache/effdense/scaleout-venv)
   with pyspark and Pillow from the package index, installs Java 17 (Debian's
   openjdk-17-jre-headless) if `java` is missing, and reruns itself there. Builds effdense
   (release), or takes EFFDENSE_BIN.
2. Makes a corpus (make_corpus.py) and runs it unsharded: `effdense detect PHOTOS --recursive`.
3. Spark in `local[2,3]` (2 tasks at once, up to 3 tries each) pipes 6 partitions of the
   pictures' paths through `effdense detect --input-list - --json - --input-root PHOTOS
   --out-dir OUT`. A wrapper makes one partition fail on its first try after half its pictures
   (exit status 3); Spark retries it.
4. compare_runs.py: the collected lines are one per picture, equal to the unsharded run's, and
   OUT holds the unsharded run's files byte for byte.
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
venv = os.environ.get("EFFDENSE_SCALEOUT_VENV", os.path.expanduser("~/.cache/effdense/scaleout-venv"))
venv_python = os.path.join(venv, "bin", "python")


def run(command, **options):
    return subprocess.run(command, check=True, **options)


if os.path.abspath(sys.prefix) != os.path.abspath(venv):
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if shutil.which("java") is None:
        print("spark_local: installing Java 17 (openjdk-17-jre-headless)", flush=True)
        run(sudo + ["apt-get", "update", "-qq"])
        run(sudo + ["apt-get", "install", "-y", "-qq", "openjdk-17-jre-headless"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not os.path.exists(venv_python):
        try:
            run([sys.executable, "-m", "venv", venv])
        except subprocess.CalledProcessError:
            run(sudo + ["apt-get", "install", "-y", "-qq", "python3-venv"])
            run([sys.executable, "-m", "venv", venv])
    if subprocess.run([venv_python, "-c", "import pyspark, PIL"], capture_output=True).returncode != 0:
        print("spark_local: installing pyspark and Pillow into %s" % venv, flush=True)
        run([venv_python, "-m", "pip", "install", "-q", "pyspark", "pillow"])
    os.execv(venv_python, [venv_python] + sys.argv)

from pyspark import SparkConf, SparkContext  # noqa: E402  (inside the virtual environment now)

pictures = int(sys.argv[1]) if len(sys.argv) > 1 else 240
# EFFDENSE_BIN: an effdense already built (else it is built here, release).
effdense = os.environ.get("EFFDENSE_BIN")
if not effdense:
    run(["swift", "build", "-c", "release", "--product", "effdense"], cwd=repo, stdout=subprocess.DEVNULL)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=repo, check=True,
                             capture_output=True, text=True).stdout.strip()
    effdense = os.path.join(bin_dir, "effdense")
effdense = os.path.abspath(effdense)
weights = os.path.join(repo, "Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth")

work = tempfile.mkdtemp(prefix="effdense-spark.")
print("spark_local: working in %s" % work, flush=True)
photos = os.path.join(work, "photos")
run([sys.executable, os.path.join(repo, "scripts/scaleout/make_corpus.py"), photos, str(pictures)])
print("spark_local: the unsharded run", flush=True)
reference = subprocess.run([effdense, "detect", photos, "--recursive", "--out-dir", os.path.join(work, "reference"),
                            "--threads", "1", "--json", os.path.join(work, "reference.jsonl"), "--weights", weights],
                           capture_output=True, text=True)
print(reference.stderr.strip().splitlines()[-1])
if reference.returncode != 0:
    sys.exit("spark_local: the unsharded run failed")

paths = sorted(os.path.join(folder, name) for folder, _, names in os.walk(photos) for name in names)
partitions = 6
flaky_partition = 3
# Spark's parallelize cuts a list into contiguous slices: the first path of slice k is known.
flaky_first_path = paths[len(paths) * flaky_partition // partitions]

# The wrapper: the partition starting with FAIL_FIRST_PATH fails on its first try, after effdense
# has processed half its pictures (a crash midway); every try is logged.
wrapper = os.path.join(work, "flaky.sh")
attempts = os.path.join(work, "attempts.log")
with open(wrapper, "w") as file:
    file.write("""#!/bin/sh
fail_first_path=$1 marker=$2 log=$3
shift 3
list=$(mktemp)
cat > "$list"
first=$(head -n 1 "$list")
if [ "$first" = "$fail_first_path" ] && mkdir "$marker" 2>/dev/null; then
    echo "fail $first" >> "$log"
    head -n $(( $(wc -l < "$list") / 2 )) "$list" | "$@"
    rm -f "$list"
    exit 3
fi
echo "ok $first" >> "$log"
"$@" < "$list"
status=$?
rm -f "$list"
exit $status
""")
os.chmod(wrapper, 0o755)

out = os.path.join(work, "out")
command = [wrapper, flaky_first_path, os.path.join(work, "failed-once"), attempts,
           effdense, "detect", "--input-list", "-", "--json", "-", "--input-root", photos, "--out-dir", out,
           "--threads", "1", "--weights", weights]
conf = (SparkConf().setMaster("local[2,3]").setAppName("effdense-pipe")
        .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false"))
context = SparkContext(conf=conf)
context.setLogLevel("ERROR")
lines = context.parallelize(paths, partitions).pipe(shlex.join(command), checkCode=True).collect()
context.stop()

with open(attempts) as file:
    tries = file.read().split("\n")
tries = [line for line in tries if line]
failed = [line for line in tries if line.startswith("fail ")]
print("spark_local: %d partitions, %d tries (%d failed and retried by Spark), %d lines collected"
      % (partitions, len(tries), len(failed), len(lines)))
if len(failed) != 1 or len(tries) != partitions + 1:
    sys.exit("spark_local: expected one failed try and one retry")
collected = os.path.join(work, "spark.jsonl")
with open(collected, "w") as file:
    file.write("".join(line + "\n" for line in lines))
run([sys.executable, os.path.join(repo, "scripts/scaleout/compare_runs.py"),
     os.path.join(work, "reference.jsonl"), os.path.join(work, "reference"), out, collected])
print("spark_local: passed (%s)" % work)
