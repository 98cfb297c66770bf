// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash writeback throttle: writeback yields to foreground I/O by itself.
 *
 * The latency of every user read and write is summed per CPU, for each
 * device it went to (cache, origin) and for each phase: a writeback pass
 * running or not (stash_throttle_start() and _end(), from the map and
 * completion paths), with a count of those in flight.  Every
 * STASH_THROTTLE_MS, before it issues a run, writeback looks at the sums
 * since the last look:
 *  - the mean latency without a pass updates each device's baseline (an
 *    average over the looks that had such I/O);
 *  - during the pass, completions gather until there are MIN_SAMPLES or a
 *    second has passed (judge()), then a decision:
 *  - no foreground I/O: writeback runs flat out (tunables.wb_inflight runs
 *    in flight, no pause);
 *  - foreground I/O on a device slower than tunables.wb_latency_pct
 *    percent of its baseline, or none completing in a second while some
 *    is in flight: the runs allowed in flight halve, and at one run a
 *    pause before each run doubles (1 ms up to 100 ms);
 *  - otherwise the pause halves, then the runs allowed grow by one.
 * An additive-increase, multiplicative-decrease loop on writeback's
 * concurrency, driven by what the foreground sees, whichever device suffers
 * (the origin from writeback's writes, the cache device from its reads and
 * from the CPU the copies take).  Without a baseline yet (writeback ran
 * from the start) nothing is throttled.
 *
 * A rate cap (tunables.wb_rate_kib) is a token bucket on the bytes runs
 * write, with a tenth of a second of burst.
 *
 * Passes that someone waits for are never held back: a flush (volatile
 * caches drain on a flush), a suspend, stash_wb_drain_sync().
 */
#include <linux/module.h>
#include <linux/delay.h>

#include "dm-stash.h"

#define PAUSE_MIN_US	1000
#define PAUSE_MAX_US	100000
/* Completions a decision wants (or a second of them). */
#define MIN_SAMPLES	8

int stash_throttle_init(struct stash_cache *sc)
{
	struct stash_throttle *t = &sc->throttle;

	t->lat = alloc_percpu(struct stash_lat);
	if (!t->lat)
		return -ENOMEM;
	t->limit = STASH_WB_SLOTS;
	t->next_look = jiffies;
	t->pend_since = jiffies;
	return 0;
}

void stash_throttle_exit(struct stash_cache *sc)
{
	free_percpu(sc->throttle.lat);
	sc->throttle.lat = NULL;
}

static bool urgent(struct stash_cache *sc)
{
	return atomic_read(&sc->wb_urgent) || READ_ONCE(sc->wb_stopped) ||
	       !bio_list_empty(&sc->flush_pass) ||
	       !bio_list_empty(&sc->flush_waiting);
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
 * since the last decision, once there are MIN_SAMPLES of them or a second
 * has passed (slow I/O completes rarely); in that second, none completed
 * while some was in flight counts as slowed.  Returns -1 until then, else
 * 0 (fine, or no foreground I/O) or 1, and *@busy.
 */
static int judge(struct stash_cache *sc, const struct stash_lat *d, bool *busy)
{
	struct stash_throttle *t = &sc->throttle;
	u32 pct = READ_ONCE(sc->tun.wb_latency_pct);
	u64 n = 0;
	int o, slow = 0;

	for (o = 0; o < 2; o++) {
		t->pend_ns[o] += d->ns[o][1];
		t->pend_n[o] += d->n[o][1];
		n += t->pend_n[o];
	}
	if (n < MIN_SAMPLES && time_before(jiffies, t->pend_since + HZ))
		return -1;
	*busy = n || d->inflight > 0;
	if (!n && d->inflight > 0)
		slow = 1;
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
	struct stash_throttle *t = &sc->throttle;
	u32 max = READ_ONCE(sc->tun.wb_inflight);
	u32 limit = READ_ONCE(t->limit), pause = READ_ONCE(t->pause_us);
	bool busy = false;
	struct stash_lat d;
	int o, slow;

	take_sums(t, &d);
	/* Without a pass: each device's baseline. */
	for (o = 0; o < 2; o++) {
		if (d.n[o][0]) {
			u64 mean = div64_u64(d.ns[o][0], d.n[o][0]);

			t->baseline_ns[o] = t->baseline_ns[o] ?
				(3 * t->baseline_ns[o] + mean) / 4 : mean;
		}
	}
	slow = judge(sc, &d, &busy);
	if (slow < 0)
		return;
	if (!READ_ONCE(sc->tun.wb_latency_pct) || !busy) {
		limit = max;
		pause = 0;
	} else if (slow) {
		t->throttled++;
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

/* Sleep up to @us, in steps that end early when the pass becomes urgent. */
static void nap(struct stash_cache *sc, u64 us)
{
	while (us && !urgent(sc)) {
		u64 step = min_t(u64, us, PAUSE_MAX_US);

		usleep_range(step, step + step / 4 + 1);
		us -= step;
	}
}

static void rate_wait(struct stash_cache *sc, u32 bytes)
{
	struct stash_throttle *t = &sc->throttle;
	u64 rate = (u64)READ_ONCE(sc->tun.wb_rate_kib) << 10;	/* bytes/s */
	u64 now = ktime_get_ns(), burst;

	if (!rate) {
		t->tokens_ns = now;
		return;
	}
	burst = max_t(u64, rate / 10, bytes);
	t->tokens = min(burst, t->tokens +
			div64_u64(rate * (now - t->tokens_ns), NSEC_PER_SEC));
	t->tokens_ns = now;
	if (t->tokens < bytes) {
		nap(sc, div64_u64((bytes - t->tokens) * USEC_PER_SEC, rate));
		t->tokens = 0;
		t->tokens_ns = ktime_get_ns();
	} else {
		t->tokens -= bytes;
	}
}

void stash_throttle_wait(struct stash_cache *sc, u32 bytes)
{
	struct stash_throttle *t = &sc->throttle;

	if (time_after_eq(jiffies, t->next_look)) {
		look(sc);
		t->next_look = jiffies + msecs_to_jiffies(STASH_THROTTLE_MS);
	}
	if (urgent(sc))
		return;
	rate_wait(sc, bytes);
	nap(sc, READ_ONCE(t->pause_us));
}

u32 stash_throttle_limit(struct stash_cache *sc)
{
	u32 max = READ_ONCE(sc->tun.wb_inflight);

	if (urgent(sc))
		return max;
	return min(max, READ_ONCE(sc->throttle.limit));
}
