// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash writeback throttle: writeback yields to foreground I/O by itself.
 *
 * Measuring.  The latency of user reads and writes of at most
 * STASH_THROTTLE_MAX_SECTORS (a bypassed stream's large I/O says nothing
 * about queueing) is summed per CPU, for each device the I/O went to
 * (cache, origin) and for each phase: writeback I/O in flight when it
 * completed, or not (stash_throttle_start() and _end(), from the map and
 * completion paths), with a count of those in flight.  Only while
 * writeback can run at all: in write-back mode, or with dirty blocks.
 *
 * Deciding.  Before each batch it collects and between the runs of a batch
 * (stash_throttle_tick()), writeback looks at the sums
 * every STASH_THROTTLE_MS (stash_throttle_wait()):
 *  - each device's mean latency without writeback in flight updates its
 *    baseline (an average over the looks that had such I/O; the pauses
 *    below give fresh ones during a long pass);
 *  - the completions with writeback in flight gather from the start of the
 *    pass until there are MIN_SAMPLES, or a second has passed with at least
 *    one (judge()); then a decision:
 *  - no foreground I/O: writeback runs flat out (tunables.wb_inflight runs
 *    in flight, batches of STASH_WB_BATCH blocks, no pause);
 *  - foreground I/O on a device slower than tunables.wb_latency_pct percent
 *    of its baseline: the runs allowed in flight halve, and at one run a
 *    pause doubles (1 ms up to 100 ms per STASH_WB_RUN_BYTES written back,
 *    so writeback never falls below 10 MiB/s);
 *  - otherwise the pause halves, then the runs allowed grow by one.
 * While throttled, a batch is one run's worth of blocks, so that a pause
 * never keeps many blocks in writeback (writes to them, discards, wait).
 * An additive-increase, multiplicative-decrease loop on writeback's
 * concurrency, driven by what the foreground sees on whichever device
 * suffers (the origin from writeback's writes, the cache device from its
 * reads and from the CPU the copies take).  Without a baseline yet,
 * nothing is judged slow.
 *
 * A rate cap (tunables.wb_rate_kib) is a token bucket on the bytes written
 * back, with a tenth of a second of burst; under a cap a batch is one
 * run's worth, and the sleep that pays for a run looks at the cap again
 * at least every PAUSE_MAX_US.
 *
 * Never held back: writeback that someone waits for (a flush on a volatile
 * cache, stash_wb_drain_sync(), a suspend from its presuspend on, a failed
 * cache rescuing its dirty blocks), and writeback above the high watermark
 * or with writes waiting for a clean slot.  The "flush" message and
 * stashctl flush are throttled like any pass.
 */
#include <linux/module.h>
#include <linux/delay.h>

#include "dm-stash.h"

#define PAUSE_MIN_US	1000
#define PAUSE_MAX_US	100000
/* Completions a decision wants (or a second with one at least). */
#define MIN_SAMPLES	8

int stash_throttle_init(struct stash_cache *sc)
{
	struct stash_throttle *t = &sc->wb.throttle;

	t->lat = alloc_percpu(struct stash_lat);
	if (!t->lat)
		return -ENOMEM;
	t->limit = STASH_WB_SLOTS;
	t->next_look = jiffies;
	t->pend_since = jiffies;
	t->tokens_ns = ktime_get_ns();
	return 0;
}

void stash_throttle_exit(struct stash_cache *sc)
{
	free_percpu(sc->wb.throttle.lat);
	sc->wb.throttle.lat = NULL;
}

/* Writeback that must not be held back now. */
static bool urgent(struct stash_cache *sc)
{
	bool flushes;

	/* Without the lock: a flush seen a look late waits one look more. */
	flushes = data_race(!bio_list_empty(&sc->wb.flush_pass) ||
			    !bio_list_empty(&sc->wb.flush_waiting));
	return flushes || atomic_read(&sc->wb.urgent) ||
	       READ_ONCE(sc->wb.stopped) || READ_ONCE(sc->wb.suspending) ||
	       stash_cache_failed(sc) || READ_ONCE(sc->wb.need_space) ||
	       stash_dirty_above(sc, READ_ONCE(sc->tun.high_wm));
}

/* The sums since the last look, into @d; the look's sums kept. */
static void take_sums(struct stash_throttle *t, struct stash_lat *d)
{
	struct stash_lat now = { };
	int cpu, o, b;

	for_each_possible_cpu(cpu) {
		struct stash_lat *l = per_cpu_ptr(t->lat, cpu);

		for (o = 0; o < 2; o++)
			for (b = 0; b < 2; b++) {
				now.ns[o][b] += READ_ONCE(l->ns[o][b]);
				now.n[o][b] += READ_ONCE(l->n[o][b]);
			}
		now.inflight += READ_ONCE(l->inflight);
	}
	for (o = 0; o < 2; o++)
		for (b = 0; b < 2; b++) {
			d->ns[o][b] = now.ns[o][b] - t->seen.ns[o][b];
			d->n[o][b] = now.n[o][b] - t->seen.n[o][b];
		}
	d->inflight = now.inflight;
	t->seen = now;
}

/*
 * Is foreground I/O slowed past the target?  Judged on the completions
 * with writeback in flight since the last decision (or the start of the
 * pass), once there are MIN_SAMPLES of them or a second has passed with
 * one at least.  Returns -1 for no decision yet, else 0 or 1, and *@busy
 * (foreground I/O at all).
 */
static int judge(struct stash_cache *sc, const struct stash_lat *d, bool *busy)
{
	struct stash_throttle *t = &sc->wb.throttle;
	u32 pct = READ_ONCE(sc->tun.wb_latency_pct);
	bool second = time_after_eq(jiffies, t->pend_since + HZ);
	u64 n = 0;
	int o, slow = 0;

	for (o = 0; o < 2; o++) {
		t->pend_ns[o] += d->ns[o][1];
		t->pend_n[o] += d->n[o][1];
		n += t->pend_n[o];
	}
	if (n < MIN_SAMPLES && !(second && n))
		/* A second without completions: idle, or I/O stuck elsewhere. */
		return second && d->inflight <= 0 ? (*busy = false, 0) : -1;
	*busy = true;
	for (o = 0; o < 2; o++) {
		if (t->pend_n[o] && t->baseline_ns[o] &&
		    div64_u64(t->pend_ns[o], t->pend_n[o]) * 100 >
		    t->baseline_ns[o] * pct)
			slow = 1;
		t->pend_ns[o] = 0;
		t->pend_n[o] = 0;
	}
	t->pend_since = jiffies;
	return slow;
}

static void look(struct stash_cache *sc)
{
	struct stash_throttle *t = &sc->wb.throttle;
	u32 max = READ_ONCE(sc->tun.wb_inflight);
	u32 limit = READ_ONCE(t->limit), pause = READ_ONCE(t->pause_us);
	u64 pass = READ_ONCE(sc->wb.passes);
	bool busy = false;
	struct stash_lat d;
	int o, slow;

	take_sums(t, &d);
	for (o = 0; o < 2; o++) {
		if (d.n[o][0]) {
			u64 mean = div64_u64(d.ns[o][0], d.n[o][0]);

			t->baseline_ns[o] = t->baseline_ns[o] ?
				(3 * t->baseline_ns[o] + mean) / 4 : mean;
		}
	}
	/* A new pass: what came before it says nothing of this one. */
	if (pass != t->pass) {
		t->pass = pass;
		memset(t->pend_ns, 0, sizeof(t->pend_ns));
		memset(t->pend_n, 0, sizeof(t->pend_n));
		t->pend_since = jiffies;
		return;
	}
	slow = judge(sc, &d, &busy);
	if (slow < 0)
		return;
	if (!READ_ONCE(sc->tun.wb_latency_pct) || !busy) {
		limit = max;
		pause = 0;
	} else if (slow) {
		WRITE_ONCE(t->throttled, t->throttled + 1);
		if (limit > 1)
			limit /= 2;
		else
			pause = clamp_t(u32, pause * 2, PAUSE_MIN_US, PAUSE_MAX_US);
	} else if (pause) {
		pause = pause / 2 < PAUSE_MIN_US ? 0 : pause / 2;
	} else if (limit < max) {
		limit++;
	}
	WRITE_ONCE(t->limit, clamp_t(u32, limit, 1, max));
	WRITE_ONCE(t->pause_us, pause);
}

/* One step of a pause: @us at most PAUSE_MAX_US, counted in paused_us. */
static void nap_step(struct stash_cache *sc, u64 us)
{
	usleep_range(us, us + us / 4 + 1);
	WRITE_ONCE(sc->wb.throttle.paused_us, sc->wb.throttle.paused_us + us);
}

/* Sleep @us, in steps that end early when the pass becomes urgent. */
static void nap(struct stash_cache *sc, u64 us)
{
	while (us && !urgent(sc)) {
		u64 step = min_t(u64, us, PAUSE_MAX_US);

		nap_step(sc, step);
		us -= step;
	}
}

/* The cap in bytes/s, 0 for none. */
static u64 rate_cap(struct stash_cache *sc)
{
	return (u64)READ_ONCE(sc->tun.wb_rate_kib) << 10;
}

/*
 * The cap: @bytes were written back since the last call.  What the bucket
 * does not cover is paid for by sleeping, in steps that each look at the
 * cap again: a cap raised or lifted while writeback sleeps takes effect
 * within a step (a pause computed once at a cap of 1 KiB/s, and kept
 * after the cap went up, held a drain for ten minutes).
 */
static void rate_wait(struct stash_cache *sc, u64 bytes)
{
	struct stash_throttle *t = &sc->wb.throttle;
	u64 rate = rate_cap(sc), now = ktime_get_ns(), dt, owed;

	dt = min_t(u64, now - t->tokens_ns, NSEC_PER_SEC / 10);
	t->tokens_ns = now;
	if (!rate) {
		t->tokens = 0;
		return;
	}
	/* rate * dt may pass 2^64: the cap goes up to 2^40 bytes/s. */
	t->tokens = min(rate / 10,
			t->tokens + mul_u64_u64_div_u64(rate, dt, NSEC_PER_SEC));
	if (t->tokens >= bytes) {
		t->tokens -= bytes;
		return;
	}
	for (owed = bytes - t->tokens; owed && !urgent(sc); ) {
		u64 us, paid;

		rate = rate_cap(sc);
		if (!rate)
			break;
		us = clamp_t(u64, div64_u64(owed * USEC_PER_SEC, rate), 1,
			     PAUSE_MAX_US);
		nap_step(sc, us);
		paid = mul_u64_u64_div_u64(rate, us, USEC_PER_SEC);
		owed = owed > paid ? owed - paid : 0;
	}
	t->tokens = 0;
	t->tokens_ns = ktime_get_ns();
}

void stash_throttle_tick(struct stash_cache *sc)
{
	struct stash_throttle *t = &sc->wb.throttle;

	if (time_after_eq(jiffies, t->next_look)) {
		look(sc);
		t->next_look = jiffies + msecs_to_jiffies(STASH_THROTTLE_MS);
	}
}

void stash_throttle_wait(struct stash_cache *sc, u64 bytes)
{
	struct stash_throttle *t = &sc->wb.throttle;
	u32 pause;

	stash_throttle_tick(sc);
	if (urgent(sc)) {
		t->tokens_ns = ktime_get_ns();
		return;
	}
	rate_wait(sc, bytes);
	/* The pause is per STASH_WB_RUN_BYTES written back. */
	pause = READ_ONCE(t->pause_us);
	if (pause && bytes)
		nap(sc, div64_u64((u64)pause * bytes, STASH_WB_RUN_BYTES) ?: 1);
}

u32 stash_throttle_limit(struct stash_cache *sc)
{
	u32 max = READ_ONCE(sc->tun.wb_inflight);

	if (urgent(sc))
		return max;
	return min(max, READ_ONCE(sc->wb.throttle.limit));
}

/*
 * Under a cap too: the cap is paid for after each batch, so a whole batch
 * (up to STASH_WB_BATCH blocks, 16 MiB of 4 KiB ones) would go at full
 * speed first.
 */
u32 stash_throttle_batch(struct stash_cache *sc)
{
	if (urgent(sc) || (READ_ONCE(sc->wb.throttle.limit) >=
			   READ_ONCE(sc->tun.wb_inflight) &&
			   !READ_ONCE(sc->wb.throttle.pause_us) && !rate_cap(sc)))
		return STASH_WB_BATCH;
	return sc->wb.run_max_blocks;
}
