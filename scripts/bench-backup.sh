#!/usr/bin/env bash
# Backup, restore, export and import rates, and what a backup costs the writers beside it: a durable
# Haven with a backup directory, exporting to and importing from moto's S3 server, is loaded with
# ITEMS items, then (each timed from the request to the end state, ROUNDS times) CreateBackup until
# AVAILABLE, RestoreTableFromBackup until ACTIVE, a RestoreTableToPointInTime (latest) until ACTIVE,
# ExportTableToPointInTime (DYNAMODB_JSON) until COMPLETED and ImportTable of that export (gzip)
# until COMPLETED; then YCSB workload A alone and with backups taken one after the other beside it.
# Rates are items/s, and MB/s of the backup image (the bytes the backup directory holds per backup),
# of the export's BilledSizeBytes, of the import's ProcessedSizeBytes. moto keeps objects in memory
# and is written in Python: the export and import figures are a floor that a real S3 raises.
# Writes the section "## Backups" of docs/benchmarks.md.
#
#   scripts/bench-backup.sh
#   ITEMS=1000000 CONNECTIONS=8 DURATION=20 WARMUP=3 ROUNDS=2 PROFILE=release scripts/bench-backup.sh
#
# Figures are for the report only: nothing here asserts a speed, and CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-1000000}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
PROFILE=${PROFILE:-release}
OUT=${OUT:-docs/benchmarks.md}
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check boto3
python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'

cargo build -q --profile "$PROFILE" -p haven -p haven-bench
bin=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bench=$bin/haven-bench
. scripts/bench-lib.sh

moto_port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 100); do curl -sf -X PUT "http://127.0.0.1:$moto_port/bench" >/dev/null && break; sleep 0.2; done
port=$(free_port)
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench "$bin/haven" serve --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --backup-dir "$work/backups" --s3-endpoint "http://127.0.0.1:$moto_port" \
  --log-level warn >"$work/haven.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/haven.log" 2>/dev/null && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port"
common=(--endpoint "$endpoint" --items "$ITEMS" --connections "$CONNECTIONS" --json)
"$bench" run load "${common[@]}" --table source --batch 25 >"$work/load.json"
echo "loaded: $(jq -c '{items_per_sec}' "$work/load.json")"

# The control-plane steps, timed by a boto3 client polling every 50 ms.
ENDPOINT=$endpoint BACKUPS="$work/backups" ROUNDS=$ROUNDS python3 - >"$work/steps.json" <<'PY'
import boto3, json, os, time, subprocess
client = boto3.client("dynamodb", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
def wait(check):
    while not check():
        time.sleep(0.05)
def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])
steps = []
client.update_continuous_backups(TableName="source",
    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
for r in range(int(os.environ["ROUNDS"])):
    before = du(os.environ["BACKUPS"])
    start = time.time()
    arn = client.create_backup(TableName="source", BackupName=f"round-{r}")["BackupDetails"]["BackupArn"]
    wait(lambda: client.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"] == "AVAILABLE")
    backup = time.time() - start
    size = du(os.environ["BACKUPS"]) - before
    active = lambda name: lambda: client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    start = time.time()
    client.restore_table_from_backup(TargetTableName=f"restored-{r}", BackupArn=arn)
    wait(active(f"restored-{r}"))
    restore = time.time() - start
    start = time.time()
    client.restore_table_to_point_in_time(SourceTableName="source", TargetTableName=f"pitr-{r}",
                                          UseLatestRestorableTime=True)
    wait(active(f"pitr-{r}"))
    pitr = time.time() - start
    items = client.describe_table(TableName=f"restored-{r}")["Table"]["ItemCount"]
    for name in (f"restored-{r}", f"pitr-{r}"):
        client.delete_table(TableName=name)
    arn = client.describe_table(TableName="source")["Table"]["TableArn"]
    start = time.time()
    export = client.export_table_to_point_in_time(TableArn=arn, S3Bucket="bench", S3Prefix=f"round-{r}",
                                                  ExportFormat="DYNAMODB_JSON")["ExportDescription"]["ExportArn"]
    describe_export = lambda: client.describe_export(ExportArn=export)["ExportDescription"]
    wait(lambda: describe_export()["ExportStatus"] != "IN_PROGRESS")
    exported, export_s = describe_export(), time.time() - start
    assert exported["ExportStatus"] == "COMPLETED", exported
    start = time.time()
    source = {"S3Bucket": "bench", "S3KeyPrefix": f"round-{r}/AWSDynamoDB/{export.rsplit('/', 1)[1]}/data/"}
    table = {"TableName": f"imported-{r}", "BillingMode": "PAY_PER_REQUEST",
             "AttributeDefinitions": client.describe_table(TableName="source")["Table"]["AttributeDefinitions"],
             "KeySchema": client.describe_table(TableName="source")["Table"]["KeySchema"]}
    imported = client.import_table(S3BucketSource=source, InputFormat="DYNAMODB_JSON", InputCompressionType="GZIP",
                                   TableCreationParameters=table)["ImportTableDescription"]["ImportArn"]
    describe_import = lambda: client.describe_import(ImportArn=imported)["ImportTableDescription"]
    wait(lambda: describe_import()["ImportStatus"] != "IN_PROGRESS")
    loaded, import_s = describe_import(), time.time() - start
    assert loaded["ImportStatus"] == "COMPLETED", loaded
    client.delete_table(TableName=f"imported-{r}")
    steps.append({"items": items, "bytes": size, "backup_s": backup, "restore_s": restore, "pitr_s": pitr,
                  "export_items": exported["ItemCount"], "export_bytes": exported["BilledSizeBytes"], "export_s": export_s,
                  "import_items": loaded["ImportedItemCount"], "import_bytes": loaded["ProcessedSizeBytes"], "import_s": import_s})
print(json.dumps(steps))
PY
echo "steps: $(cat "$work/steps.json")"

# Workload A alone, then with backups one after the other for as long as it runs.
for round in $(seq 1 "$ROUNDS"); do
  "$bench" run a "${common[@]}" --table source --duration "$DURATION" --warmup "$WARMUP" >"$work/a-alone-$round.json"
  ENDPOINT=$endpoint SECONDS_BESIDE=$(echo "$WARMUP + $DURATION" | bc) python3 - >"$work/beside-$round.count" <<'PY' &
import boto3, os, time
client = boto3.client("dynamodb", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
taken, stop = 0, time.time() + float(os.environ["SECONDS_BESIDE"])
while time.time() < stop:
    arn = client.create_backup(TableName="source", BackupName=f"beside-{taken}")["BackupDetails"]["BackupArn"]
    while client.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"] != "AVAILABLE":
        time.sleep(0.05)
    client.delete_backup(BackupArn=arn)
    taken += 1
print(taken)
PY
  beside=$!
  "$bench" run a "${common[@]}" --table source --duration "$DURATION" --warmup "$WARMUP" >"$work/a-beside-$round.json"
  wait "$beside"
  echo "round $round: A alone $(jq .ops_per_sec "$work/a-alone-$round.json"), beside backups $(jq .ops_per_sec "$work/a-beside-$round.json") ($(cat "$work/beside-$round.count") backups)"
done

command="ITEMS=$ITEMS CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS PROFILE=$PROFILE scripts/bench-backup.sh"
python3 - "$work" "$OUT" "$command" "$ROUNDS" <<'PY'
import json, subprocess, sys, time
sys.path.insert(0, "scripts")
from docs_section import replace_section
work, out, command, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load = lambda name: json.load(open(f"{work}/{name}.json"))
steps = load("steps")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rate = lambda items, size, secs: f"{items / secs:,.0f} items/s, {size / secs / 1e6:.1f} MB/s ({secs:.1f} s)"
lines = ["## Backups: backup, restore, export and import rates, and a backup beside workload A", "",
    f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}; "
    f"load average {open('/proc/loadavg').read().split()[0]} at the end). One durable server with `--backup-dir` on the "
    f"same disk, a table of {steps[0]['items']:,} items of about 1 KB (loaded at {load('load')['items_per_sec']:,.0f} items/s "
    "by BatchWriteItem). Each step is timed from its request to the end state a client polls for (backup AVAILABLE, "
    "restored table ACTIVE, export and import COMPLETED); MB: for backups and restores the bytes of the backup image "
    "in the store (DynamoDB JSON lines), for the export its BilledSizeBytes, for the import its ProcessedSizeBytes "
    "(uncompressed). Exports go to and imports come from moto's S3 server (Python, objects in memory) on the same "
    "machine: those two figures are a floor.", "",
    "| round | CreateBackup | RestoreTableFromBackup | RestoreTableToPointInTime (latest) | ExportTableToPointInTime | ImportTable (gzip) | image |",
    "| --- | --- | --- | --- | --- | --- | --- |"]
for r, s in enumerate(steps, 1):
    lines.append(f"| {r} | {rate(s['items'], s['bytes'], s['backup_s'])} | {rate(s['items'], s['bytes'], s['restore_s'])} | "
        f"{rate(s['items'], s['bytes'], s['pitr_s'])} | {rate(s['export_items'], s['export_bytes'], s['export_s'])} | "
        f"{rate(s['import_items'], s['import_bytes'], s['import_s'])} | {s['bytes'] / 1e6:,.0f} MB |")
lines += ["", "Workload A alone and with backups of the same table taken one after the other while it runs:", "",
    "| round | A alone (ops/s, p99 µs) | A beside backups (ops/s, p99 µs) | cost | backups taken |", "| --- | --- | --- | --- | --- |"]
for r in range(1, rounds + 1):
    alone, beside = load(f"a-alone-{r}"), load(f"a-beside-{r}")
    taken = open(f"{work}/beside-{r}.count").read().strip()
    lines.append(f"| {r} | {alone['ops_per_sec']:.0f}, {alone['latency']['p99_us']} | {beside['ops_per_sec']:.0f}, "
        f"{beside['latency']['p99_us']} | {1 - beside['ops_per_sec'] / alone['ops_per_sec']:+.1%} | {taken} |")
replace_section(out, "\n".join(lines))
PY
echo "wrote $OUT"
