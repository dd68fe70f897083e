"""The machinery the raftreg benchmarks share; each ``benchmarks/*_bench.py`` holds only its workload.

The benchmark scripts run as ``python benchmarks/<name>_bench.py``, so ``benchmarks/`` is on
``sys.path`` and they import this package as ``harness``. One job per module:

* ``proc``: /proc parsing (CPU ticks, RSS, machine ticks, uptime), load average, open-file limit.
* ``cpu``: ``CpuAccount``, CPU % of named processes over one or more measuring windows.
* ``rss``: ``RssSampler``, a thread sampling the RSS of named processes (peak per name).
* ``stats``: percentiles, latency summaries, splitting work over client processes.
* ``payloads``: registration bodies, key paths and the lookup answer decoder.
* ``light_http``: the minimal keep-alive HTTP/1.1 asyncio client (``LightPool``), the same
  interface over aiohttp (``AiohttpPool``) and the client-side error codes.
* ``sync_http``: ``Http``, sequential blocking requests over one keep-alive connection.
* ``workers``: the spawned client processes (``ClientPool``), their start barrier and job runner.
* ``closed_loop``: the closed-loop ``put`` / ``get`` jobs and their aggregated run result.
* ``watch_job``: the ``watch`` job (many blocking queries on one node, round reports).
* ``open_loop``: the rate-driven ``open_loop`` job, its per-request records (``OpenLoopRecords``)
  and ``TickLoad``, the 5 ms scheduler base of the tick-driven loads.
* ``report``: logging, number formats, tables, run metadata and the result JSON.
* ``bench``: ``Bench``, the base class (phases, clusters, client pool, helper servers, summary).
* ``cli``: the shared command-line options and the run-and-report tail of ``main``.

A benchmark subclasses ``Bench`` (``PHASES``, ``sizes``, ``phase_<name>`` methods, extra job kinds
in ``handlers``), builds its parser with ``cli.common_parser`` and ``cli.add_size_options``, and ends
``main`` with ``cli.check_common_args`` and ``cli.run_and_report``.
"""
