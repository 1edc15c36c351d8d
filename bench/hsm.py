"""CA keys in an HSM: signing throughput and full issuance, SoftHSM2 next to the software keystore.

    .venv/bin/python bench/hsm.py [--signs 2000] [--orders 150] [--rounds 3] [--concurrency 1,4]

1. Signing: ECDSA P-256 (SHA-256) and RSA-2048 (PKCS#1 v1.5, SHA-256) signatures per second
   through `Pkcs11KeyStore` (SoftHSM2, every signature verified before it is returned) and
   through `SoftwareKeyStore`, from one thread and from two.
2. Full issuance (the same flow as bench/issuance.py): certplane with its CA keys in the software
   keystore beside certplane with every CA key in a SoftHSM2 token, levels alternating between
   them for --rounds rounds. Target: the HSM median rate is at least 80 % of the software
   median at each concurrency level.

Results: a table on stdout, JSON in bench/results/hsm.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from cpbench.client import Transport  # noqa: E402
from cpbench.flow import PollPolicy, Responder  # noqa: E402
from cpbench.procs import free_port, stop_all  # noqa: E402
from cpbench.runner import LevelResult, Settings, name_source, register, run_level  # noqa: E402
from cpbench.targets import start_certplane, wait_ready  # noqa: E402
from cptest.softhsm import session_softhsm  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402

from certplane.ca.keys.api import KeyAlgorithm, KeyStore, SigningKey  # noqa: E402
from certplane.ca.keys.envelope import MasterKey  # noqa: E402
from certplane.ca.keys.pkcs11 import Pkcs11KeyStore, Pkcs11Settings  # noqa: E402
from certplane.ca.keys.software import SoftwareKeyStore  # noqa: E402

TARGET_RATIO = 0.8
BINDING = "tenant:bench"
TBS = secrets.token_bytes(420)  # about the size of a leaf's TBSCertificate


def _sign(key: SigningKey) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key.sign(TBS, ec.ECDSA(hashes.SHA256()))
    else:
        key.sign(TBS, padding.PKCS1v15(), hashes.SHA256())


def signs_per_second(key: SigningKey, count: int, threads: int) -> float:
    per_thread = count // threads

    def work() -> None:
        for _ in range(per_thread):
            _sign(key)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return per_thread * threads / (time.perf_counter() - started)


def signing(count: int) -> list[dict[str, Any]]:
    hsm = session_softhsm()
    stores: dict[str, KeyStore] = {
        "software": SoftwareKeyStore(MasterKey.generate()),
        "softhsm2": Pkcs11KeyStore(
            Pkcs11Settings(hsm.module, (hsm.new_token("bench-sign"),), hsm.pin_source)
        ),
    }
    rows = []
    for algorithm, n in ((KeyAlgorithm.EC_P256, count), (KeyAlgorithm.RSA_2048, count // 4)):
        for name, store in stores.items():
            key = store.load(store.generate(algorithm, binding=BINDING).ref, binding=BINDING)
            _sign(key)
            for threads in (1, 2):
                rate = signs_per_second(key, n, threads)
                rows.append(
                    {"algorithm": algorithm.value, "keystore": name, "threads": threads,
                     "signatures_per_second": round(rate, 1)}
                )  # fmt: skip
                print(f"sign {algorithm.value:9} {name:9} threads={threads}: {rate:8.1f}/s")
    return rows


async def issuance(orders: int, concurrency: list[int], rounds: int) -> list[LevelResult]:
    """Both servers up at once; levels alternate between them for ``rounds`` rounds, so drift
    in the machine's speed hits both alike (the report takes each target's median)."""
    cfg = Settings(
        concurrency=concurrency,
        orders=orders,
        warmup=5,
        timeout=300.0,
        stall=30.0,
        poll=PollPolicy(first=0.005),
        profile=False,
        results_dir=HERE / "results",
    )
    responder, port = Responder(), free_port()
    await responder.start(port)
    names = name_source(secrets.token_hex(3))
    results: list[LevelResult] = []
    servers = []
    try:
        async with Transport(request_timeout=cfg.timeout) as transport:
            for hsm in (False, True):
                running = await asyncio.to_thread(
                    start_certplane, port, tls=False, log_level="WARNING", hsm=hsm
                )
                directory = await wait_ready(transport, running)
                servers.append((running, await register(transport, directory, max(concurrency))))
            for _ in range(rounds):
                for conc in concurrency:
                    for running, accounts in servers:
                        result = await run_level(running, accounts, responder, names, cfg, conc)
                        results.append(result)
                        print(
                            f"issue {result.target:14} c={conc}: {result.status} "
                            f"{result.issuances_per_second} iss/s, "
                            f"CPU {result.server_cpu_ms_per_issuance} ms/iss"
                        )
    finally:
        for running, _ in servers:
            running.stop()
        await responder.stop()
    return results


def ratios(results: list[LevelResult]) -> list[dict[str, Any]]:
    """Per concurrency level: each target's median rate over the rounds, and HSM / software."""
    rates: dict[tuple[str, int], list[float]] = {}
    for r in results:
        if r.status == "ok" and r.issuances_per_second:
            rates.setdefault((r.target, r.concurrency), []).append(r.issuances_per_second)
    rows = []
    for conc in sorted({c for _, c in rates}):
        soft, hsm = rates.get(("certplane", conc)), rates.get(("certplane-hsm", conc))
        if not soft or not hsm:
            continue
        ratio = statistics.median(hsm) / statistics.median(soft)
        rows.append(
            {"concurrency": conc, "software": statistics.median(soft), "software_runs": soft,
             "hsm": statistics.median(hsm), "hsm_runs": hsm, "ratio": round(ratio, 3),
             "pass": ratio >= TARGET_RATIO}
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signs", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=150, help="orders per level and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "hsm.json")
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    try:
        signs = signing(args.signs)
        results = asyncio.run(issuance(args.orders, concurrency, args.rounds))
    finally:
        stop_all()
    summary = ratios(results)
    for row in summary:
        verdict = "PASS" if row["pass"] else "FAIL"
        print(
            f"c={row['concurrency']}: median software {row['software']} iss/s, "
            f"HSM {row['hsm']} iss/s "
            f"-> {row['ratio']:.2f}x (target >= {TARGET_RATIO}) {verdict}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {"signing": signs, "issuance": [r.to_json() for r in results], "ratios": summary},
            indent=1,
        )
    )
    ok = bool(summary) and all(row["pass"] for row in summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
