//! The packed GEMM's driver: how a product is cut into jobs ([`Plan`]), the per-thread pack
//! buffers, and the loops of one job around the micro-kernel (see the module documentation of
//! [`gemm`](super) for the scheme).

use super::{
    a_in_place, should_parallelize, Dest, MicroKernel, PrefetchLines, PrefetchWalk, StridedMat, A_ROW_STRIDE,
    GEMM_KC, GEMM_MC, GEMM_NC, JOB_MIN_WORK, MAX_TILE, MIN_JOBS, PREFETCH_MIN_BYTES,
};
use rayon::prelude::*;
use std::cell::Cell;
use std::ops::Range;

/// 64 bytes: the unit of the pack buffers, so that packed panels are aligned for full-width
/// vector loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Align64([f32; 16]);

/// One thread's packing space, reused across calls so that a GEMM allocates nothing once the
/// buffers have grown to the largest block seen.
#[derive(Default)]
struct PackBuffers {
    a: Vec<Align64>,
    b: Vec<Align64>,
}

thread_local! {
    static PACK_BUFFERS: Cell<PackBuffers> =
        const { Cell::new(PackBuffers { a: Vec::new(), b: Vec::new() }) };
}

/// Runs `f` with this thread's pack buffers. They are moved out for the duration, so a
/// nested call on the same thread (rayon may run another job while this one waits) simply
/// starts with fresh buffers instead of aliasing these.
fn with_pack_buffers<R>(f: impl FnOnce(&mut PackBuffers) -> R) -> R {
    let mut bufs = PACK_BUFFERS.take();
    let result = f(&mut bufs);
    PACK_BUFFERS.set(bufs);
    result
}

/// A pointer to room for at least `count` elements of `T` (`f32` or bf16 bits) in `buf`,
/// 64-byte aligned, growing it if needed.
fn reserve<T>(buf: &mut Vec<Align64>, count: usize) -> *mut T {
    let units = (count * size_of::<T>()).div_ceil(size_of::<Align64>());
    if buf.len() < units {
        buf.resize(units, Align64([0.0; 16]));
    }
    buf.as_mut_ptr().cast()
}

/// The scratch tile of edge tiles, aligned like the pack buffers.
#[repr(C, align(64))]
struct ScratchTile([f32; MAX_TILE]);

/// `c`'s base pointer (or the shared packing's), shared by the jobs (tasks), which write
/// disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut<T = f32>(*mut T);
// SAFETY: jobs write pairwise disjoint parts of `c` (see `gemm_packed`), and `c` is
// exclusively borrowed for the whole call; the same for the tasks of `pack_b_shared`.
unsafe impl<T> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedOut<T> {}

/// How [`gemm_packed`] cuts a product: K blocks of `kc`, and a grid of `m_jobs x n_jobs`
/// jobs of `mb x nb` elements of `c` (the last row and column of jobs may be smaller). A
/// function of the shape (and the tile size) alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) kc: usize,
    pub(super) mb: usize,
    pub(super) nb: usize,
    pub(super) m_jobs: usize,
    pub(super) n_jobs: usize,
}

/// The K block size of a product of depth `k` ([`Plan::kc`]): equal blocks of at most
/// [`GEMM_KC`] steps, rounded up to 16 steps, so that no block is a sliver.
pub(super) fn k_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(GEMM_KC).max(1)).next_multiple_of(16).min(GEMM_KC)
}

impl Plan {
    pub(super) fn new(m: usize, k: usize, n: usize, mr: usize, nr: usize) -> Plan {
        let kc = k_block(k);
        // Jobs as big as the cache budget allows...
        let (m_tiles, n_tiles) = (m.div_ceil(mr), n.div_ceil(nr));
        let (max_m_tiles, max_n_tiles) = ((GEMM_MC / mr).max(1), (GEMM_NC / nr).max(1));
        let mut m_jobs = m_tiles.div_ceil(max_m_tiles);
        let mut n_jobs = n_tiles.div_ceil(max_n_tiles);
        // ...then split further, across the longer side of a job, until there are enough jobs
        // for a few threads or they would get too small.
        while m_jobs * n_jobs < MIN_JOBS {
            let (tm, tn) = (m_tiles.div_ceil(m_jobs), n_tiles.div_ceil(n_jobs));
            if tm * mr * tn * nr * k < 2 * JOB_MIN_WORK || (tm == 1 && tn == 1) {
                break;
            }
            if (tn * nr >= tm * mr && tn > 1) || tm == 1 {
                n_jobs += 1;
            } else {
                m_jobs += 1;
            }
        }
        // Even out the jobs: the same number of tiles in each (but the last).
        let tm = m_tiles.div_ceil(m_jobs);
        let tn = n_tiles.div_ceil(n_jobs);
        Plan { kc, mb: tm * mr, nb: tn * nr, m_jobs: m_tiles.div_ceil(tm), n_jobs: n_tiles.div_ceil(tn) }
    }
}

/// Largest `b` (bytes, packed) that [`gemm_packed`] packs once for all its jobs when it cuts
/// the rows of `c` between them; above it, each job packs its own K blocks of `b` as it goes.
const SHARED_B_MAX_BYTES: usize = 4 << 20;

/// Panels of `b` that one task of the shared packing packs (per K block).
const SHARED_B_PANELS_PER_TASK: usize = 4;

thread_local! {
    static SHARED_B: Cell<Vec<Align64>> = const { Cell::new(Vec::new()) };
}

/// All of `b` packed once and read by every job: K block after K block (each `kc` steps but
/// the last), each block `panels` panels of `panel_len(kc)` elements in the layout a job's own
/// packing gives its columns. (The plan's `kc` is a multiple of 16, so no block but the last
/// is padded, and block `p0 / kc` starts at element `p0 * panels * NR`.)
#[derive(Clone, Copy)]
struct PackedB {
    /// The first element, of the kernel's `Packed` type.
    base: *const u8,
    panels: usize,
}
// SAFETY: written before the jobs start (the packing's parallel tasks write disjoint panels)
// and only read while they run.
unsafe impl Send for PackedB {}
// SAFETY: as above.
unsafe impl Sync for PackedB {}

/// The packed GEMM driver: cuts `c` into the jobs of [`Plan`] and runs them, on rayon when the
/// product is big. The caller has checked that the CPU supports `K`.
///
/// When the jobs split the rows of `c`, each would pack the same columns of `b` again (four
/// times over for the weight-gradient products of a 768-row batch, whose jobs are 96 rows
/// high). Then `b` is packed once (in parallel when the jobs are) before the jobs run, if it
/// is small enough.
/// The kernel computes the same sums from the same panels either way, so the bits do not
/// change.
pub(super) fn gemm_packed<K: MicroKernel>(a: StridedMat, b: StridedMat, dest: Dest) {
    gemm_prepacked::<K>(a, b, dest, Prepacked::default());
}

/// Operands that the caller has already put in the kernel's layouts (the bf16 GEMM's
/// [`Bf16Rows`](super::Bf16Rows) and [`PackedBf16B`](super::PackedBf16B)); the matching
/// `StridedMat` given to [`gemm_prepacked`] then only tells the shape, and its data is never
/// read.
#[derive(Clone, Copy, Default)]
pub(super) struct Prepacked {
    /// `a` as rows of `K::Packed` read in place: the first element and the row stride (in
    /// elements); rows readable up to a multiple of 4 (the kernel's smallest tile height)
    /// and zero past `k` up to the next pair of steps.
    pub(super) a: Option<(*const u8, usize)>,
    /// All of `b` in the [`PackedB`] layout (with the plan's K blocks), 64-byte aligned.
    pub(super) b: Option<*const u8>,
}

/// [`gemm_packed`] with operands that may come already packed ([`Prepacked`]).
pub(super) fn gemm_prepacked<K: MicroKernel>(a: StridedMat, b: StridedMat, dest: Dest, pre: Prepacked) {
    let Dest { c, ldc, accumulate, bias } = dest;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let plan = Plan::new(m, k, n, K::MR, K::NR);
    let out = SharedOut(c.as_mut_ptr());
    let jobs = plan.m_jobs * plan.n_jobs;
    let parallel = jobs > 1 && should_parallelize(m * k * n);
    let panels = n.div_ceil(K::NR);
    // Every block but the last is unpadded, so all of b takes what one panel_len(k) block
    // would.
    let packed_len = panels * K::panel_len(k);
    let share_b =
        pre.b.is_none() && plan.m_jobs > 1 && packed_len * size_of::<K::Packed>() <= SHARED_B_MAX_BYTES;
    // Taken out of the thread-local for the call, so that a nested GEMM on this thread (rayon
    // may run one while this one waits) starts with its own.
    let mut shared = if share_b { SHARED_B.take() } else { Vec::new() };
    let packed_b = share_b.then(|| {
        let base = reserve::<K::Packed>(&mut shared, packed_len);
        pack_b_shared::<K>(&b, plan.kc, panels, SharedOut(base), parallel);
        PackedB { base: base.cast_const().cast(), panels }
    });
    let packed_b = packed_b.or(pre.b.map(|base| PackedB { base, panels }));
    let a_rows = pre.a.map(|(base, stride)| InPlaceA { base, stride });
    let job_cols = |job: usize| {
        let jn = job % plan.n_jobs;
        (jn * plan.nb)..((jn + 1) * plan.nb).min(n)
    };
    let run = |job: usize| {
        let jm = job / plan.n_jobs;
        let rows = (jm * plan.mb)..((jm + 1) * plan.mb).min(m);
        // Rayon hands out runs of consecutive jobs, so the next job is usually this thread's.
        let next_cols = (job + 1 < jobs).then(|| job_cols(job + 1));
        let job = Job {
            a: &a,
            b: &b,
            c: out,
            ldc,
            rows,
            cols: job_cols(job),
            next_cols,
            kc: plan.kc,
            packed_b,
            a_rows,
            bias,
        };
        // SAFETY: the CPU supports K (checked by sgemm_block); the job's rows and columns lie
        // inside c (m x n with rows ldc apart, exclusively borrowed for this call), and
        // distinct jobs own disjoint rectangles, so no two threads touch the same element;
        // the shared packed b is complete and no longer written.
        with_pack_buffers(|bufs| unsafe { job.run::<K>(accumulate, bufs) });
    };
    if parallel {
        (0..jobs).into_par_iter().for_each(run);
    } else {
        (0..jobs).for_each(run);
    }
    if share_b {
        SHARED_B.set(shared);
    }
}

/// Packs all of `b` into `dst` as [`PackedB`] lays it out, in parallel tasks of a few panels
/// of one K block each. `dst` holds `panels * K::panel_len(b.rows)` elements, 64-byte aligned.
fn pack_b_shared<K: MicroKernel>(
    b: &StridedMat,
    kc: usize,
    panels: usize,
    dst: SharedOut<K::Packed>,
    parallel: bool,
) {
    let (k, n, nr) = (b.rows, b.cols, K::NR);
    let groups = panels.div_ceil(SHARED_B_PANELS_PER_TASK);
    let tasks = k.div_ceil(kc) * groups;
    let pack = |task: usize| {
        let (block, group) = (task / groups, task % groups);
        let p0 = block * kc;
        let kc = kc.min(k - p0);
        let first = group * SHARED_B_PANELS_PER_TASK;
        let cols = (first * nr)..((first + SHARED_B_PANELS_PER_TASK) * nr).min(n);
        // SAFETY: the CPU supports K (checked by sgemm_block); rows p0..p0+kc and the columns
        // lie inside b; the task's panels start 64-byte aligned (at a multiple of NR elements
        // times an even kc, a multiple of 32 of at least two bytes each) and end inside dst,
        // and no two tasks share a panel.
        let dst = &dst; // the whole wrapper (Sync), not its raw pointer field
        unsafe {
            let at = dst.0.add(p0 * panels * nr + first * K::panel_len(kc));
            K::pack_b(at, b, p0, kc, cols.start, cols.len());
        }
    };
    if parallel {
        (0..tasks).into_par_iter().for_each(pack);
    } else {
        (0..tasks).for_each(pack);
    }
}

/// `a` given in the kernel's element type, read in place ([`Prepacked::a`]).
#[derive(Clone, Copy)]
struct InPlaceA {
    base: *const u8,
    stride: usize,
}
// SAFETY: only read while the jobs run (the caller's borrow outlives the call).
unsafe impl Send for InPlaceA {}
// SAFETY: as above.
unsafe impl Sync for InPlaceA {}

/// One job of [`gemm_packed`]: `c[rows, cols] (+)= a[rows, :] @ b[:, cols]`.
struct Job<'a, 'b> {
    a: &'a StridedMat<'b>,
    b: &'a StridedMat<'b>,
    c: SharedOut,
    ldc: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    /// The columns of the job likely to run next on this thread, for prefetching.
    next_cols: Option<Range<usize>>,
    /// The K block size of the plan.
    kc: usize,
    /// All of `b`, packed before the jobs started (else the job packs its own).
    packed_b: Option<PackedB>,
    /// All of `a`, already in the kernel's element type (else the job packs its strips).
    a_rows: Option<InPlaceA>,
    /// Added to every row of `c` once its tiles are complete (a dense layer's bias).
    bias: Option<&'a [f32]>,
}

impl Job<'_, '_> {
    /// Loops K block -> strip of `a` -> panel of `b` -> micro-kernel (strip first, then K
    /// block, for kernels that pack `a` when `b` is packed already).
    ///
    /// # Safety
    /// The CPU supports `K`; `rows` and `cols` lie inside `c`, which is `a.rows x ldc`, and
    /// no other thread accesses that rectangle during the call.
    unsafe fn run<K: MicroKernel>(&self, accumulate: bool, bufs: &mut PackBuffers) {
        // The driver hands a kernel that reads in place `a`'s own floats.
        const { assert!(!K::READS_A_IN_PLACE || size_of::<K::Packed>() == size_of::<f32>()) };
        let (a, b, (mr, nr), k) = (self.a, self.b, (K::MR, K::NR), self.a.cols);
        let cols = self.cols.clone();
        let n_panels = cols.len().div_ceil(nr);
        let in_place = a_in_place(a);
        // A prepacked `a` is read by the kernel in order, as an in-place f32 `a` is.
        let prefetch_a = self.a_rows.is_none() && a.rows * a.cols * 4 > PREFETCH_MIN_BYTES;
        let prefetch_b = b.rows * b.cols * 4 > PREFETCH_MIN_BYTES;
        let a_panel = reserve::<K::Packed>(&mut bufs.a, A_ROW_STRIDE * mr);
        let own_b = if self.packed_b.is_some() {
            std::ptr::null_mut()
        } else {
            reserve::<K::Packed>(&mut bufs.b, K::panel_len(self.kc) * n_panels)
        };
        // With all of b packed beforehand, a kernel that packs `a` takes one strip through
        // all K blocks before the next (`rows` is then one strip at a time), so that the
        // packing's prefetch of the next strip is spread over the whole strip's work: 25 % on
        // the 32768x1600x64 bf16 product, whose copies of `a` otherwise waited on memory. The
        // sums, and so the bits, are those of the K-block-first order.
        let strip_first = !K::READS_A_IN_PLACE && self.packed_b.is_some() && self.a_rows.is_none();
        let group = if strip_first { mr } else { self.rows.len() };
        for first_row in self.rows.clone().step_by(group) {
            let rows = first_row..(first_row + group).min(self.rows.end);
            let mut p0 = 0;
            while p0 < k {
                let kc = self.kc.min(k - p0);
                // The first K block overwrites c unless the caller accumulates; later ones add.
                let acc = accumulate || p0 > 0;
                let last_block = p0 + kc == k;
                let b_block = match self.packed_b {
                    // The job's first panel in this K block of the shared packing.
                    Some(packed) => packed
                        .base
                        .cast::<K::Packed>()
                        .wrapping_add(p0 * packed.panels * nr + cols.start / nr * K::panel_len(kc)),
                    None => {
                        // SAFETY: rows p0..p0+kc <= k and the job's columns lie inside b; the
                        // n_panels panels of panel_len(kc) fit the n_panels*panel_len(self.kc)
                        // reserved, 64-byte aligned.
                        unsafe { K::pack_b(own_b, b, p0, kc, cols.start, cols.len()) };
                        own_b.cast_const()
                    }
                };
                // While computing this block, fetch the b that will be packed next.
                let calls = rows.len().div_ceil(mr) * n_panels;
                let mut prefetch_b = if !prefetch_b || self.packed_b.is_some() {
                    PrefetchWalk::NONE
                } else if p0 + kc < k {
                    PrefetchWalk::new(b, (p0 + kc)..(p0 + kc + self.kc).min(k), cols.clone(), calls, kc)
                } else if let Some(next) = self.next_cols.clone() {
                    PrefetchWalk::new(b, 0..self.kc.min(k), next, calls, kc)
                } else {
                    PrefetchWalk::NONE
                };
                for i in rows.clone().step_by(mr) {
                    let h = mr.min(rows.end - i);
                    // The kernel reads whole tiles of rows, so a strip of another height is packed
                    // (zero-padded) even when `a` could be read in place.
                    // (Only kernels of f32 panels read in place, so the cast changes nothing.)
                    let (a_strip, a_row_stride) = if let Some(pre) = self.a_rows {
                        // Rows i.. from step p0 (an even step: kc is a multiple of 16); the
                        // rows past `a.rows` up to the tile height are readable (Prepacked::a).
                        (pre.base.cast::<K::Packed>().wrapping_add(i * pre.stride + p0), pre.stride)
                    } else if K::READS_A_IN_PLACE && in_place && K::tile_extent(h, nr).0 == h {
                        (a.ptr(i, p0).cast::<K::Packed>(), a.row_stride)
                    } else {
                        // SAFETY: rows i..i+h <= a.rows, columns p0..p0+kc <= k; the panel has
                        // A_ROW_STRIDE*mr floats.
                        unsafe { K::pack_a(a_panel, a, i, h, p0, kc) };
                        (a_panel.cast_const(), if a.rows_contiguous() { A_ROW_STRIDE } else { 0 })
                    };
                    // And the next strip of a, while this one meets the job's columns.
                    let next_strip = (i + mr)..(i + 2 * mr).min(rows.end);
                    let mut prefetch_a = if prefetch_a && !next_strip.is_empty() {
                        PrefetchWalk::new(a, next_strip, p0..p0 + kc, n_panels, kc)
                    } else {
                        PrefetchWalk::NONE
                    };
                    for (t, j) in cols.clone().step_by(nr).enumerate() {
                        let w = nr.min(cols.end - j);
                        // In bounds: panel t of the block, and element (i, j) of c.
                        let b_panel = b_block.wrapping_add(t * K::panel_len(kc));
                        let c_tile = self.c.0.wrapping_add(i * self.ldc + j);
                        let prefetch = [prefetch_a.next_lines(), prefetch_b.next_lines()];
                        if K::tile_extent(h, w) == (h, w) {
                            // SAFETY: the tile (i..i+h, j..j+w) lies inside this job's part of c;
                            // the strip and the panel hold kc steps.
                            unsafe {
                                K::kernel(
                                    kc,
                                    h,
                                    w,
                                    a_strip,
                                    a_row_stride,
                                    b_panel,
                                    c_tile,
                                    self.ldc,
                                    acc,
                                    prefetch,
                                )
                            };
                        } else {
                            // The kernel would write past the edge of c: give it the scratch tile.
                            // SAFETY: the tile lies inside this job's part of c (see below).
                            unsafe {
                                self.edge_tile::<K>(
                                    kc,
                                    h,
                                    w,
                                    a_strip,
                                    a_row_stride,
                                    b_panel,
                                    c_tile,
                                    acc,
                                    prefetch,
                                )
                            };
                        }
                        if let Some(bias) = self.bias.filter(|_| last_block) {
                            // The tile is final and still in L1: add the bias to its rows.
                            for r in 0..h {
                                // SAFETY: row r < h of the tile has w elements inside c, which no
                                // other thread touches.
                                let row =
                                    unsafe { std::slice::from_raw_parts_mut(c_tile.add(r * self.ldc), w) };
                                for (v, &b) in row.iter_mut().zip(&bias[j..j + w]) {
                                    *v += b;
                                }
                            }
                        }
                    }
                }
                p0 += kc;
            }
        }
    }

    /// An edge tile: the kernel writes a full-size scratch tile (loaded from `c` first when it
    /// accumulates), and only the `h x w` part inside `c` is copied back.
    ///
    /// # Safety
    /// As for [`MicroKernel::kernel`], with `c_tile` valid for an `h x w` tile of row stride
    /// `self.ldc` that no other thread accesses.
    #[allow(clippy::too_many_arguments)]
    unsafe fn edge_tile<K: MicroKernel>(
        &self,
        kc: usize,
        h: usize,
        w: usize,
        a_strip: *const K::Packed,
        a_row_stride: usize,
        b_panel: *const K::Packed,
        c_tile: *mut f32,
        acc: bool,
        prefetch: [PrefetchLines; 2],
    ) {
        let nr = K::NR;
        let mut scratch = ScratchTile([0.0; MAX_TILE]);
        {
            let tile = scratch.0.as_mut_ptr();
            if acc {
                for r in 0..h {
                    // SAFETY: row r < h of the tile has w elements inside c, and the
                    // scratch rows are nr >= w floats.
                    unsafe { std::ptr::copy_nonoverlapping(c_tile.add(r * self.ldc), tile.add(r * nr), w) };
                }
            }
            // SAFETY: the scratch tile is MR*NR <= MAX_TILE floats with row stride nr.
            unsafe { K::kernel(kc, h, w, a_strip, a_row_stride, b_panel, tile, nr, acc, prefetch) };
            for r in 0..h {
                // SAFETY: as above; only the h x w part inside c is written back.
                unsafe { std::ptr::copy_nonoverlapping(tile.add(r * nr), c_tile.add(r * self.ldc), w) };
            }
        }
    }
}
