#!/usr/bin/env python3
"""Starts a server command, polls its port every 0.1 ms with a ListTables request and prints
"<milliseconds to the first answer> <pid>"; the pid is the command's own, or the last line it prints
when the second argument is 1 (dynamodb-local.sh prints the java process's pid once it is ready).
The server's output goes to $SERVER_LOG. Used by bench-compare.sh and startup.sh. (Until 2026-12-07 the
poll was every millisecond, which added up to a millisecond of waiting to every server's figure.)

    SERVER_LOG=log scripts/start-server.py PORT 0|1 COMMAND...
"""
import os, socket, subprocess, sys, time
port, from_stdout, cmd = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
request = ("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n"
    f"X-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: {now}\r\nAuthorization: AWS4-HMAC-SHA256 "
    f"Credential=x/{now[:8]}/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=x\r\n"
    "Content-Length: 2\r\nConnection: close\r\n\r\n{}").encode()
start = time.monotonic()
log = open(os.environ["SERVER_LOG"], "w")
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if from_stdout else log, stderr=log)
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            if s.recv(16).startswith(b"HTTP/1.1 200"):
                break
    except OSError:
        pass
    if proc.poll() is not None and not from_stdout:
        sys.exit("server exited")
    if time.monotonic() - start > 120:
        sys.exit("server did not answer")
    time.sleep(0.0001)
elapsed = (time.monotonic() - start) * 1000
pid = proc.stdout.read().decode().split()[-1] if from_stdout else proc.pid
print(f"{elapsed:.1f} {pid}")
