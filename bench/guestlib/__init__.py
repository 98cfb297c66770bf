"""The benchmark's guest side, split by job (bench/guest.py runs it).

  util.py        paths (OUT, RAW, REPO), the clock of the log (T0), shell,
                 sysfs and dm helpers, the kernel log, fio and its results
  devices.py     the devices every system is built on (Devices: brd,
                 null_blk, dm-linear) and waiting for them to be quiet
  workloads.py   the fio workloads (WORKLOADS) and one measured run of one
  systems.py     the systems under test (Stash, DmCache, WriteCache,
                 Bcache, ...) and run_system(): one system, every workload
  phases/        the phases after the systems: drain.py (dm-stash
                 write-back drains), memory.py (kernel memory per block)

Importing util reads $STASH_OUT (as bench/guest.py always did).  Imports
go one way: util <- devices <- workloads <- systems <- phases <- guest.py.
"""
