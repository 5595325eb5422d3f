#!/usr/bin/env python3
"""The object store's own ceiling for `make bench`: a plain S3 client (botocore's SigV4 signer,
one keep-alive HTTP/1.1 connection per thread) PUTs COUNT objects of SIZE bytes under PREFIX
with CONCURRENCY requests in flight (`put`), or GETs them all back (`get`), and prints the
MiB/s. Payloads go up unsigned (UNSIGNED-PAYLOAD), as the gateway's do, so the store hashes
neither; the gateway's also carry their CRC32C, which the store checks at a small cost, so this
is a ceiling the gateway cannot pass.

    raw_store.py ENDPOINT BUCKET PREFIX COUNT SIZE CONCURRENCY put|get   (credentials: AWS_* variables)
"""

import concurrent.futures
import hashlib
import http.client
import os
import sys
import threading
import time
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

endpoint, bucket, prefix, count, size, concurrency, mode = sys.argv[1:8]
count, size, concurrency = int(count), int(size), int(concurrency)
parsed = urllib.parse.urlsplit(endpoint)
credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
region = os.environ.get("AWS_REGION", "us-east-1")
local = threading.local()


def request(method, key, body=b"", accept=(200, 204)):
    """Sends one signed request on this thread's connection; returns the response body. A body
    goes unsigned."""
    path = f"/{bucket}/{urllib.parse.quote(key)}" if key else f"/{bucket}"
    url = endpoint + path
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD" if body else hashlib.sha256(body).hexdigest()}
    signed = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "s3", region).add_auth(signed)
    if not hasattr(local, "connection"):
        local.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    local.connection.request(method, path, body=body, headers=dict(signed.headers))
    response = local.connection.getresponse()
    data = response.read()
    if response.status not in accept:
        raise SystemExit(f"raw_store: {method} {key}: HTTP {response.status}: {data[:200]!r}")
    return data


def timed(operation):
    """Runs `operation` on every object with CONCURRENCY threads; returns MiB/s."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(operation, range(count)))
    return count * size / 1048576 / (time.monotonic() - start)


if mode == "put":
    request("PUT", "", accept=(200, 409))  # the bucket, unless it is there
    payload = os.urandom(size)
    print(f"{timed(lambda i: request('PUT', f'{prefix}/{i}', payload)):.1f}")
elif mode == "get":
    print(f"{timed(lambda i: len(request('GET', f'{prefix}/{i}')) == size or sys.exit(f'raw_store: short GET of {i}')):.1f}")
else:
    sys.exit(f"raw_store: the last argument is put or get, not {mode!r}")
