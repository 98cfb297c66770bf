"""The phases that run after the systems: drain.py (dm-stash write-back
drains) and memory.py (kernel memory per cache block)."""
