// SPDX-License-Identifier: GPL-2.0
/*
 * On-disk format: geometry, encode, decode and validation (see
 * stash-format.h).  Everything read from a disk is checked here before the
 * module or a tool uses it.
 */
#include "stash-format.h"

static u32 block_crc(const void *block)
{
	return ~stash_crc32c(~0u, (const u8 *)block + 4,
			     STASH_MD_BLOCK_BYTES - 4);
}

/* Sectors from 0 to the end of slot n - 1, metadata included. */
static u64 layout_end(u64 n, u32 block_sectors, u32 epp, u64 *md_pages,
		      u64 *data_start)
{
	u64 pages = (n + epp - 1) / epp;
	u64 start = STASH_MD_START + pages * 2 * STASH_MD_BLOCK_SECTORS;

	start = (start + block_sectors - 1) / block_sectors * block_sectors;
	*md_pages = pages;
	*data_start = start;
	return start + n * block_sectors;
}

int stash_geometry_compute_csum(struct stash_geometry *g, u64 cache_sectors,
				u64 origin_sectors, u32 block_sectors,
				u32 min_cblocks, bool csum)
{
	u32 epp = csum ? STASH_MD_CSUM_ENTRIES_PER_PAGE :
			 STASH_MD_ENTRIES_PER_PAGE;
	u64 lo = 0, hi, mid, md_pages, data_start;

	memset(g, 0, sizeof(*g));
	if (!block_sectors || cache_sectors <= STASH_MD_START)
		return -1;
	/* The largest n that fits: the layout grows with n, so bisect. */
	hi = (cache_sectors - STASH_MD_START) / block_sectors;
	if (hi > STASH_MAX_CBLOCKS)
		hi = STASH_MAX_CBLOCKS;
	while (lo < hi) {
		mid = lo + (hi - lo + 1) / 2;
		if (layout_end(mid, block_sectors, epp, &md_pages,
			       &data_start) <= cache_sectors)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (!lo || lo < min_cblocks)
		return -1;
	layout_end(lo, block_sectors, epp, &md_pages, &data_start);
	g->origin_sectors = origin_sectors;
	g->cache_sectors = cache_sectors;
	g->md_start = STASH_MD_START;
	g->data_start = data_start;
	g->block_sectors = block_sectors;
	g->nr_cblocks = (u32)lo;
	g->md_pages = (u32)md_pages;
	g->entries_per_page = epp;
	g->csum = csum;
	return 0;
}

/*
 * Identity strings.  name: a dm name (no control characters, no '/');
 * origin_path: a table argument (printable ASCII, no spaces); options:
 * printable ASCII.
 */
enum field_kind { FIELD_NAME, FIELD_PATH, FIELD_OPTIONS };

static bool char_ok(u8 c, enum field_kind kind)
{
	switch (kind) {
	case FIELD_NAME:
		return c >= 0x20 && c != 0x7f && c != '/';
	case FIELD_PATH:
		return c > 0x20 && c < 0x7f;
	default:
		return c >= 0x20 && c < 0x7f;
	}
}

static size_t field_len(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && s[n])
		n++;
	return n;
}

/* NUL-terminated within @len, every character before the NUL allowed. */
static bool string_ok(const char *s, size_t len, enum field_kind kind)
{
	size_t n = field_len(s, len);

	if (n == len)
		return false;
	while (n--)
		if (!char_ok((u8)s[n], kind))
			return false;
	return true;
}

/* On disk also: every byte after the NUL zero. */
static bool field_ok(const char *f, size_t len, enum field_kind kind)
{
	size_t n;

	if (!string_ok(f, len, kind))
		return false;
	for (n = field_len(f, len); n < len; n++)
		if (f[n])
			return false;
	return true;
}

bool stash_sb_name_ok(const char *s)
{
	return string_ok(s, STASH_SB_NAME_BYTES, FIELD_NAME);
}

bool stash_sb_path_ok(const char *s)
{
	return string_ok(s, STASH_SB_PATH_BYTES, FIELD_PATH);
}

bool stash_sb_options_ok(const char *s)
{
	return string_ok(s, STASH_SB_OPTIONS_BYTES, FIELD_OPTIONS);
}

/* A string the checks above refused is not recorded (left empty). */
static void put_field(char *f, size_t len, const char *s, enum field_kind kind)
{
	if (string_ok(s, len, kind))
		memcpy(f, s, strlen(s));	/* the rest is zero already */
}

void stash_sb_encode_ident(const struct stash_sb *sb,
			   const struct stash_sb_ident *id, void *block)
{
	struct stash_sb_disk *d = block;

	memset(d, 0, sizeof(*d));
	d->magic = cpu_to_le32(STASH_SB_MAGIC);
	d->version = cpu_to_le32(sb->geo.csum ? STASH_FORMAT_VERSION_CSUM :
						STASH_FORMAT_VERSION);
	d->flags = cpu_to_le32(sb->flags);
	d->seq = cpu_to_le64(sb->seq);
	memcpy(d->uuid, sb->uuid, sizeof(d->uuid));
	d->origin_sectors = cpu_to_le64(sb->geo.origin_sectors);
	d->cache_sectors = cpu_to_le64(sb->geo.cache_sectors);
	d->md_start = cpu_to_le64(sb->geo.md_start);
	d->data_start = cpu_to_le64(sb->geo.data_start);
	d->block_sectors = cpu_to_le32(sb->geo.block_sectors);
	d->nr_cblocks = cpu_to_le32(sb->geo.nr_cblocks);
	d->md_pages = cpu_to_le32(sb->geo.md_pages);
	d->mode = cpu_to_le32(sb->mode);
	if (id) {
		put_field(d->name, sizeof(d->name), id->name, FIELD_NAME);
		d->origin_dev_sectors = cpu_to_le64(id->origin_dev_sectors);
		put_field(d->origin_path, sizeof(d->origin_path),
			  id->origin_path, FIELD_PATH);
		put_field(d->options, sizeof(d->options), id->options,
			  FIELD_OPTIONS);
	}
	d->crc = cpu_to_le32(block_crc(d));
}

static bool all_zero(const u8 *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

int stash_sb_decode(const void *block, struct stash_sb *sb, const char **why)
{
	const struct stash_sb_disk *d = block;
	struct stash_geometry g;
	u32 flags, version;

	if (le32_to_cpu(d->magic) != STASH_SB_MAGIC) {
		*why = "no dm-stash superblock (bad magic)";
		return -1;
	}
	if (le32_to_cpu(d->crc) != block_crc(d)) {
		*why = "superblock checksum mismatch";
		return -1;
	}
	version = le32_to_cpu(d->version);
	if (version != STASH_FORMAT_VERSION &&
	    version != STASH_FORMAT_VERSION_CSUM) {
		*why = "unsupported on-disk format version";
		return -1;
	}
	flags = le32_to_cpu(d->flags);
	if ((flags & ~(STASH_SB_FLAG_CLEAN | STASH_SB_FLAG_NEEDS_CHECK)) ||
	    !all_zero(d->reserved, sizeof(d->reserved)) ||
	    le32_to_cpu(d->mode) > 2) {
		*why = "superblock has unknown flags or fields";
		return -1;
	}
	/* The geometry must be exactly what the sizes give. */
	if (!field_ok(d->name, sizeof(d->name), FIELD_NAME) ||
	    !field_ok(d->origin_path, sizeof(d->origin_path), FIELD_PATH) ||
	    !field_ok(d->options, sizeof(d->options), FIELD_OPTIONS)) {
		*why = "superblock has a malformed volume name, origin or options";
		return -1;
	}
	if (stash_geometry_compute_csum(&g, le64_to_cpu(d->cache_sectors),
					le64_to_cpu(d->origin_sectors),
					le32_to_cpu(d->block_sectors), 1,
					version == STASH_FORMAT_VERSION_CSUM) ||
	    g.md_start != le64_to_cpu(d->md_start) ||
	    g.data_start != le64_to_cpu(d->data_start) ||
	    g.nr_cblocks != le32_to_cpu(d->nr_cblocks) ||
	    g.md_pages != le32_to_cpu(d->md_pages) ||
	    g.block_sectors < 8 || g.block_sectors > 2048 ||
	    (g.block_sectors & (g.block_sectors - 1))) {
		*why = "superblock geometry is inconsistent";
		return -1;
	}
	sb->geo = g;
	sb->seq = le64_to_cpu(d->seq);
	sb->flags = flags;
	sb->mode = le32_to_cpu(d->mode);
	memcpy(sb->uuid, d->uuid, sizeof(sb->uuid));
	return 0;
}

enum stash_sb_kind stash_sb_classify(const void *block, struct stash_sb *sb,
				     const char **why)
{
	const struct stash_sb_disk *d = block;

	if (all_zero(block, STASH_MD_BLOCK_BYTES)) {
		*why = "all zero";
		return STASH_SB_BLANK;
	}
	if (!stash_sb_decode(block, sb, why))
		return STASH_SB_VALID;
	if (le32_to_cpu(d->magic) != STASH_SB_MAGIC)
		return STASH_SB_FOREIGN;
	if (le32_to_cpu(d->crc) != block_crc(d))
		return STASH_SB_BAD_CRC;
	if (le32_to_cpu(d->version) != STASH_FORMAT_VERSION &&
	    le32_to_cpu(d->version) != STASH_FORMAT_VERSION_CSUM)
		return STASH_SB_VERSION;
	return STASH_SB_INVALID;
}

void stash_sb_decode_ident(const void *block, struct stash_sb_ident *id)
{
	const struct stash_sb_disk *d = block;

	memset(id, 0, sizeof(*id));
	id->origin_dev_sectors = le64_to_cpu(d->origin_dev_sectors);
	memcpy(id->name, d->name, sizeof(id->name) - 1);
	memcpy(id->origin_path, d->origin_path, sizeof(id->origin_path) - 1);
	memcpy(id->options, d->options, sizeof(id->options) - 1);
}

void stash_md_page_encode(void *block, u32 index, u64 seq, const u64 *entries)
{
	struct stash_md_page_disk *d = block;
	u32 i;

	d->index = cpu_to_le32(index);
	d->seq = cpu_to_le64(seq);
	for (i = 0; i < STASH_MD_ENTRIES_PER_PAGE; i++)
		d->entries[i] = cpu_to_le64(entries[i]);
	d->crc = cpu_to_le32(block_crc(d));
}

/*
 * The part both versions share (crc, index and seq at the same offsets):
 * check the crc and the index, return the sequence.
 */
static int page_header_decode(const void *block, u32 index, u64 *seq,
			      const char **why)
{
	const struct stash_md_page_disk *d = block;

	if (le32_to_cpu(d->crc) != block_crc(d)) {
		*why = "metadata page checksum mismatch";
		return -1;
	}
	if (le32_to_cpu(d->index) != index) {
		*why = "metadata page in the wrong place";
		return -1;
	}
	*seq = le64_to_cpu(d->seq);
	return 0;
}

int stash_md_page_decode(const void *block, u32 index, u32 nr_cblocks,
			 u64 nr_oblocks, u64 *seq, u64 *entries,
			 const char **why)
{
	const struct stash_md_page_disk *d = block;
	u64 first = (u64)index * STASH_MD_ENTRIES_PER_PAGE;
	u32 i;

	if (page_header_decode(block, index, seq, why))
		return -1;
	for (i = 0; i < STASH_MD_ENTRIES_PER_PAGE; i++) {
		u64 e = le64_to_cpu(d->entries[i]);

		if (e && (!(e & STASH_MD_VALID) || (e & STASH_MD_RESERVED_MASK) ||
			  first + i >= nr_cblocks ||
			  (e & STASH_MD_OBLOCK_MASK) >= nr_oblocks)) {
			*why = "metadata entry out of range";
			return -1;
		}
		entries[i] = e;
	}
	return 0;
}

void stash_md_page_peek(const void *buf, u32 *index, u64 *seq)
{
	const struct stash_md_page_disk *d = buf;

	*index = le32_to_cpu(d->index);
	*seq = le64_to_cpu(d->seq);
}

void stash_md_page_encode_geo(void *block, const struct stash_geometry *g,
			      u32 index, u64 seq, const u64 *entries,
			      const u32 *csums)
{
	struct stash_md_page_csum_disk *d = block;
	u32 i;

	if (!g->csum) {
		stash_md_page_encode(block, index, seq, entries);
		return;
	}
	d->index = cpu_to_le32(index);
	d->seq = cpu_to_le64(seq);
	for (i = 0; i < STASH_MD_CSUM_ENTRIES_PER_PAGE; i++) {
		d->entries[i] = cpu_to_le64(entries[i]);
		d->csums[i] = cpu_to_le32(!entries[i] ||
					  (entries[i] & STASH_MD_OPEN) ?
					  0 : csums[i]);
	}
	d->crc = cpu_to_le32(block_crc(d));
}

int stash_md_page_decode_geo(const void *block,
			     const struct stash_geometry *g, u32 index,
			     u64 nr_oblocks, u64 *seq, u64 *entries,
			     u32 *csums, const char **why)
{
	const struct stash_md_page_csum_disk *d = block;
	u64 first = (u64)index * STASH_MD_CSUM_ENTRIES_PER_PAGE;
	u32 i;

	if (!g->csum) {
		if (csums)
			memset(csums, 0, sizeof(u32) * g->entries_per_page);
		return stash_md_page_decode(block, index, g->nr_cblocks,
					    nr_oblocks, seq, entries, why);
	}
	if (page_header_decode(block, index, seq, why))
		return -1;
	for (i = 0; i < STASH_MD_CSUM_ENTRIES_PER_PAGE; i++) {
		u64 e = le64_to_cpu(d->entries[i]);
		u32 crc = le32_to_cpu(d->csums[i]);

		if (e ? (!(e & STASH_MD_VALID) ||
			 (e & STASH_MD_CSUM_RESERVED_MASK) ||
			 first + i >= g->nr_cblocks ||
			 (e & STASH_MD_OBLOCK_MASK) >= nr_oblocks ||
			 ((e & STASH_MD_OPEN) && crc)) : crc) {
			*why = "metadata entry out of range";
			return -1;
		}
		entries[i] = e;
		if (csums)
			csums[i] = crc;
	}
	return 0;
}

/*
 * ---- Recovery rules (docs/format.md, "Recovery") ----
 */

static bool block_is_zero(const void *block)
{
	const u64 *w = block;
	size_t i;

	for (i = 0; i < STASH_MD_BLOCK_BYTES / sizeof(u64); i++)
		if (w[i])
			return false;
	return true;
}

/* Check copy @k of @both into @c; its entries into @entries, @csums. */
static void check_copy(const void *both, int k, const struct stash_geometry *g,
		       u32 p, u64 nr_oblocks, u64 *entries, u32 *csums,
		       struct stash_md_copy *c)
{
	const void *b = (const char *)both + k * STASH_MD_BLOCK_BYTES;

	c->checked = true;
	c->why = NULL;
	c->blank = block_is_zero(b);
	c->valid = !stash_md_page_decode_geo(b, g, p, nr_oblocks, &c->seq,
					     entries, csums, &c->why);
}

/* A copy recovery may use: valid, and committed (not above @sb_seq). */
static bool usable(const struct stash_md_copy *c, u64 sb_seq)
{
	return c->checked && c->valid && c->seq <= sb_seq;
}

void stash_md_pick_page(const void *both, const struct stash_geometry *g,
			u32 p, u64 nr_oblocks, u64 sb_seq, bool check_both,
			u64 *entries, u32 *csums, u64 *scratch,
			u32 *csum_scratch, struct stash_md_pick *pick)
{
	struct stash_md_copy *c = pick->copy;
	int k, first = -1, other;

	memset(pick, 0, sizeof(*pick));
	pick->best = -1;
	for (k = 0; k < 2; k++)
		stash_md_page_peek((const char *)both + k * STASH_MD_BLOCK_BYTES,
				   &c[k].raw_index, &c[k].raw_seq);
	/*
	 * The copy whose header claims the newest committed version (copy 0
	 * on a tie) is checked first; if it is usable, the other claims no
	 * newer committed version and need not be checked.
	 */
	if (c[0].raw_index == p && c[0].raw_seq <= sb_seq)
		first = 0;
	if (c[1].raw_index == p && c[1].raw_seq <= sb_seq &&
	    (first < 0 || c[1].raw_seq > c[0].raw_seq))
		first = 1;
	if (first >= 0) {
		check_copy(both, first, g, p, nr_oblocks, entries, csums,
			   &c[first]);
		if (usable(&c[first], sb_seq))
			pick->best = first;
	}
	/*
	 * Otherwise the other copy, which is usable only if it claims an
	 * older committed version (a copy that claims no committed version of
	 * this page cannot be usable: no copy is if neither claims one).
	 */
	if (pick->best < 0 || check_both) {
		/* Into the scratch buffers if @entries holds the best copy. */
		for (k = 0; k < 2; k++) {
			if (c[k].checked)
				continue;
			check_copy(both, k, g, p, nr_oblocks,
				   pick->best < 0 ? entries : scratch,
				   pick->best < 0 ? csums : csum_scratch, &c[k]);
			if (pick->best >= 0 || !usable(&c[k], sb_seq))
				continue;
			pick->best = k;
		}
	}
	if (pick->best < 0) {
		pick->result = STASH_PICK_NO_COPY;
		return;
	}
	other = 1 - pick->best;
	/*
	 * A commit writes a page to the copy that does not hold its newest
	 * committed version, and a torn commit's copy is stamped above the
	 * superblock: a damaged copy that claims this page and a sequence
	 * above the best one's, not above the superblock's, was the newest
	 * committed version.  The older copy may map slots reused since.
	 */
	if (c[other].checked && !c[other].valid &&
	    c[other].raw_index == p && c[other].raw_seq > c[pick->best].seq &&
	    c[other].raw_seq <= sb_seq) {
		pick->result = STASH_PICK_NEWEST_DAMAGED;
		return;
	}
	pick->result = STASH_PICK_OK;
	pick->erase_other = c[other].raw_index == p &&
			    c[other].raw_seq > sb_seq;
}

const char *stash_md_pick_why(const struct stash_md_pick *pick)
{
	const struct stash_md_copy *c = pick->copy;

	if (c[1].checked && !c[1].valid)
		return c[1].why;
	if (c[0].checked && !c[0].valid)
		return c[0].why;
	return "sequence newer than the superblock's";
}
