#!/bin/bash
# desc: xfs on a stash volume in each mode: fio on many files with fsync plus metadata churn, fsck clean and every file verified on the volume and on the origin alone
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fs.sh"
require_root
stash_load_module

fs_stress xfs 320 64
