//! Single-precision GEMM in the BLIS style: `c[m,n] = a[m,k] @ b[k,n]` (plus the old `c`),
//! with AVX-512 and AVX2 micro-kernels and matrixmultiply as the portable fallback.
//!
//! # How it is cut
//!
//! * **K** into blocks of at most [`GEMM_KC`] steps (equal sizes, fixed by `k` alone). For
//!   each block the partial product is added into `c`, so `c` is read and written once per
//!   block.
//! * **Output jobs**: `c` is cut into rectangles of at most [`GEMM_MC`] rows by [`GEMM_NC`]
//!   columns; when that gives fewer than four jobs for a big product, into more, narrower
//!   ones (a 128-row dense-layer product becomes four column blocks), so that two threads
//!   have work. The jobs run on rayon; each packs what it needs itself, into thread-local
//!   buffers.
//! * **Micro-tiles**: inside a job, for every K block the job's columns of `b` are packed into
//!   `NR`-column panels (`kc x NR`, row after row, zero-padded past the edge). Then for each
//!   `MR`-row strip of `a`, the micro-kernel computes the `MR x NR` tiles of `c` against each
//!   panel in turn, holding a whole tile in registers for all `kc` steps:
//!   `c[MR x NR] += a_strip[MR x kc] * b_panel[kc x NR]`.
//!
//! The `a` strip (`MR x kc`, 12 KiB) stays in L1 while the kernel sweeps the job's `b` panels
//! (`kc x NC`, up to 512 KiB) out of L2. The kernel broadcasts single values of `a`, so it
//! reads them in any order at the same speed: a row-major `a` is read in place (no packing),
//! a transposed one is copied into a panel of `MR` values per step of k. Only `b` is ever
//! turned around (for `b` stored transposed, with 16x16 in-register transposes). Packing
//! reads the operands through their strides, so transposes cost no extra copy.
//!
//! Operands too big for L2 are prefetched by the micro-kernel a block ahead of their use
//! (`PrefetchWalk`): the kernel keeps the FMA units busy and leaves the memory system idle,
//! while packing would otherwise stall on every cache line.
//!
//! # Micro-kernels
//!
//! Selected once per process ([`gemm_backend`]):
//!
//! * AVX-512F, 12 x 32: 24 of the 32 zmm registers accumulate, two hold a row of the `b`
//!   panel, one the broadcast value of `a`; each step of k is 24 FMAs against 2 vector loads
//!   and 12 broadcasts.
//! * AVX2 + FMA, 6 x 16: the same shape on 16 ymm registers (12 accumulate).
//! * Anything else: `matrixmultiply::sgemm` on fixed 64-row blocks of `c`
//!   ([`GemmBackend::Portable`]).
//!
//! The bf16 GEMM ([`sgemm_bf16`], in `bf16.rs`) runs the same driver with a 12 x 32
//! AVX512_BF16 kernel (`vdpbf16ps`, k in pairs) whose packed panels hold bf16 instead of f32
//! (`MicroKernel::Packed`); it always packs `a`, rounding it. [`sgemm_bf16_prepacked`]
//! (`bf16_prepacked.rs`) takes operands that the caller has rounded already: `a` as bf16 rows
//! read in place, `b` f32 or already packed (the bf16 convolution's weight and im2col).
//!
//! Edge tiles use smaller instances of the same kernel (fewer rows or one vector of columns)
//! writing into a scratch tile.
//!
//! # Determinism
//!
//! Every element of `c` is computed the same way whatever job, tile or thread computes it:
//! per K block, a register starts at zero and takes one FMA per step in increasing k, then is
//! added to `c` (or stored, for the first block without `accumulate`). So the bits depend
//! only on the K blocking, which depends only on `k` (and on the backend). The job grid,
//! fixed by the shape alone anyway, and the number of threads do not change them: the K
//! reduction is never split between threads.

// Off x86-64 only the portable backend exists, and the packed driver is never instantiated.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#![deny(unsafe_op_in_unsafe_fn)]

use super::parallel::should_parallelize;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

/// Largest K block: the number of k steps the micro-kernel runs before adding its tile to
/// `c`. With a 12 x 32 tile, the `a` strip (12 KiB) and the `b` panel it meets (32 KiB) fit
/// the 48 KiB L1 together; 320 and up measured 10-40 % slower on the conv shapes.
pub const GEMM_KC: usize = 256;

/// Largest number of rows of `c` in one job of [`sgemm`] (a multiple of both kernels'
/// heights). Each job repacks its columns of `b`, so taller jobs pack less; 480 measured a few
/// percent faster than 240 on the im2col shapes.
pub const GEMM_MC: usize = 480;

/// Largest number of columns of `c` in one job of [`sgemm`] (a multiple of both kernels'
/// widths): the job's packed `b` block, `GEMM_KC x GEMM_NC` floats (512 KiB), sits in L2.
pub const GEMM_NC: usize = 512;

/// Below this many jobs [`sgemm`] splits `c` further, so that a few threads find work...
const MIN_JOBS: usize = 4;

/// ...as long as each job keeps at least this many multiply-adds (about 15 us of work):
/// smaller jobs would spend their time repacking operands that a bigger job reuses.
const JOB_MIN_WORK: usize = 1 << 21;

/// Rows of `c` per `matrixmultiply::sgemm` call on the portable path.
const PORTABLE_ROW_BLOCK: usize = 64;

/// Operands larger than this (bytes) are prefetched ahead of their use; smaller ones are
/// assumed to stay in the 2 MiB L2 once touched. (Prefetching cached operands cost 4-5 %:
/// the prefetches hold L1 fill buffers that the kernel's own loads of `b` need.)
const PREFETCH_MIN_BYTES: usize = 1 << 20;

/// Row stride (floats) of a packed row panel of `a` (used when `a`'s own rows lie a
/// multiple of 2 KiB apart): room for [`GEMM_KC`] steps, padded so that the rows do not fall
/// into the same L1 cache sets (1088 bytes apart).
const A_ROW_STRIDE: usize = GEMM_KC + 16;

/// Largest `MR * NR` of any micro-kernel: the size of the scratch tile for edge tiles.
const MAX_TILE: usize = 512;

/// A read-only view of a `rows x cols` matrix stored with arbitrary strides: element `(i, j)`
/// is `data[i * row_stride + j * col_stride]`. A row-major `[r, c]` array is
/// `(row_stride, col_stride) = (c, 1)`; its transpose is the same data with `(1, c)`.
#[derive(Clone, Copy, Debug)]
pub struct StridedMat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> StridedMat<'a> {
    /// A view of `data` as a `rows x cols` matrix with the given strides; panics if some
    /// element would lie outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "StridedMat: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) \
                 reaches element {last}, but the data has {} elements",
                data.len()
            );
        }
        StridedMat { data, rows, cols, row_stride, col_stride }
    }

    /// A row-major `[rows, cols]` matrix, or (`transposed`) the transpose of a row-major
    /// `[cols, rows]` one.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize, transposed: bool) -> Self {
        if transposed {
            Self::new(data, rows, cols, 1, rows)
        } else {
            Self::new(data, rows, cols, cols, 1)
        }
    }

    /// A view of the shape of a prepacked operand, whose data is never read (see
    /// `driver::Prepacked`).
    fn shape_only(rows: usize, cols: usize) -> StridedMat<'static> {
        StridedMat { data: &[], rows, cols, row_stride: 0, col_stride: 0 }
    }

    /// The transpose: the same data with rows and columns (and their strides) swapped.
    pub fn transposed(self) -> Self {
        StridedMat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pointer to element `(i, j)`. Safe to compute for any `i`, `j` (wrapping arithmetic);
    /// it points into `data` when `i < rows` and `j < cols`.
    #[inline(always)]
    fn ptr(&self, i: usize, j: usize) -> *const f32 {
        self.data.as_ptr().wrapping_add(i * self.row_stride + j * self.col_stride)
    }

    /// Element `(i, j)`; `i < rows`, `j < cols` (bounds-checked through the slice).
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Whether rows are contiguous (and not also columns: a single row or column counts as
    /// column-contiguous).
    fn rows_contiguous(&self) -> bool {
        self.col_stride == 1 && self.row_stride != 1
    }
}

/// Which implementation [`sgemm_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmBackend {
    /// The packed GEMM of this module with its 12 x 32 AVX-512F micro-kernel (x86-64).
    Avx512,
    /// The packed GEMM with its 6 x 16 AVX2 + FMA micro-kernel (x86-64).
    Avx2,
    /// `matrixmultiply::sgemm` on fixed 64-row blocks of `c`, run on rayon (any CPU).
    Portable,
}

impl GemmBackend {
    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                GemmBackend::Portable => true,
                GemmBackend::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                GemmBackend::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == GemmBackend::Portable
        }
    }
}

/// The fastest backend this CPU supports (detected on the first call, then cached).
pub fn gemm_backend() -> GemmBackend {
    static DETECTED: OnceLock<GemmBackend> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        [GemmBackend::Avx512, GemmBackend::Avx2]
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(GemmBackend::Portable)
    })
}

/// `c = a @ b` (or `c += a @ b` when `accumulate`), `c` row-major `[a.rows(), b.cols()]`,
/// with the fastest backend of this CPU ([`gemm_backend`]). Without `accumulate` the old
/// contents of `c` are never read (NaNs there do not propagate).
pub fn sgemm(a: StridedMat, b: StridedMat, c: &mut [f32], accumulate: bool) {
    sgemm_with(gemm_backend(), a, b, c, accumulate);
}

/// [`sgemm`] with a chosen backend (for tests and benchmarks); panics if the CPU lacks it.
pub fn sgemm_with(backend: GemmBackend, a: StridedMat, b: StridedMat, c: &mut [f32], accumulate: bool) {
    let (m, n) = (a.rows, b.cols);
    assert_eq!(c.len(), m * n, "sgemm: c has {} elements, expected [{m}, {n}]", c.len());
    sgemm_block(backend, a, b, Dest { c, ldc: n, accumulate, bias: None });
}

/// [`sgemm`] into an `[m, n]` block of a larger row-major matrix whose rows are `ldc >= n`
/// floats apart: element `(i, j)` of the product goes to `c[i * ldc + j]`, and the floats
/// between the block's rows are neither read nor written. Attention writes each head's
/// output into its columns of the merged `[T, heads * d]` rows this way.
pub fn sgemm_ld(a: StridedMat, b: StridedMat, c: &mut [f32], ldc: usize, accumulate: bool) {
    check_ld("sgemm_ld", a.rows, b.cols, c.len(), ldc);
    sgemm_block(gemm_backend(), a, b, Dest { c, ldc, accumulate, bias: None });
}

/// Checks that `c` (of `len` floats) holds an `[m, n]` block with rows `ldc` apart.
fn check_ld(op: &str, m: usize, n: usize, len: usize, ldc: usize) {
    assert!(ldc >= n, "{op}: rows of c are {ldc} apart, fewer than the {n} columns");
    if m > 0 && n > 0 {
        let need = (m - 1) * ldc + n;
        assert!(len >= need, "{op}: c has {len} elements, a [{m}, {n}] block {ldc} apart needs {need}");
    }
}

/// `c = a @ b + bias` with `bias` added to every row (a dense layer's output, `c` row-major
/// `[a.rows(), b.cols()]`, `bias` `[b.cols()]`): each tile takes the bias as soon as its sum
/// is complete, while it is still in L1, instead of in a second pass over `c`. The same bits
/// as [`sgemm`] followed by the addition.
pub fn sgemm_bias(a: StridedMat, b: StridedMat, bias: &[f32], c: &mut [f32]) {
    let (m, n) = (a.rows, b.cols);
    assert_eq!(c.len(), m * n, "sgemm_bias: c has {} elements, expected [{m}, {n}]", c.len());
    assert_eq!(bias.len(), n, "sgemm_bias: bias has {} elements, expected {n}", bias.len());
    match gemm_backend() {
        // The portable path has no epilogue, and an empty product never reaches one: a second
        // pass.
        backend if backend == GemmBackend::Portable || a.cols == 0 => {
            sgemm_block(backend, a, b, Dest { c: &mut *c, ldc: n, accumulate: false, bias: None });
            for row in c.chunks_exact_mut(n) {
                for (v, &x) in row.iter_mut().zip(bias) {
                    *v += x;
                }
            }
        }
        backend => sgemm_block(backend, a, b, Dest { c, ldc: n, accumulate: false, bias: Some(bias) }),
    }
}

/// Where and how a product is written: into `c`, whose rows are `ldc` floats apart, over its
/// old contents or added to them, with a bias added to every row or not.
struct Dest<'a> {
    c: &'a mut [f32],
    ldc: usize,
    accumulate: bool,
    bias: Option<&'a [f32]>,
}

/// Checks that `a` and `b` can be multiplied, and writes the products that sum nothing: true
/// when `dest` is complete (`c` empty, or `k = 0`, an empty sum being zero).
fn product_is_empty(a: &StridedMat, b: &StridedMat, dest: &mut Dest) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm: a is {m}x{k} but b is {}x{n}", b.rows);
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        if !dest.accumulate {
            for row in dest.c.chunks_mut(dest.ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return true;
    }
    false
}

/// The shared body of [`sgemm_with`], [`sgemm_ld`] and [`sgemm_bias`]; `dest.c` holds the
/// block with row stride `dest.ldc` (checked by the callers). The portable backend takes no
/// bias.
fn sgemm_block(backend: GemmBackend, a: StridedMat, b: StridedMat, mut dest: Dest) {
    assert!(backend.is_available(), "sgemm: this CPU cannot run the {backend:?} backend");
    if product_is_empty(&a, &b, &mut dest) {
        return;
    }
    match backend {
        GemmBackend::Portable => {
            assert!(dest.bias.is_none(), "sgemm: the portable backend has no bias epilogue");
            sgemm_portable(a, b, dest.c, dest.ldc, dest.accumulate)
        }
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Avx512 => gemm_packed::<avx512::Avx512>(a, b, dest),
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Avx2 => gemm_packed::<avx2::Avx2>(a, b, dest),
        #[cfg(not(target_arch = "x86_64"))]
        GemmBackend::Avx512 | GemmBackend::Avx2 => unreachable!("sgemm: only Portable exists off x86-64"),
    }
}

/// The portable path: one `matrixmultiply::sgemm` per fixed block of 64 rows of `c` (each
/// repacks `b`, which is why this is slow for 128-row products), blocks on rayon.
fn sgemm_portable(a: StridedMat, b: StridedMat, c: &mut [f32], ldc: usize, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // beta = 0 makes matrixmultiply ignore the old contents of `c` entirely (NaNs included).
    let beta = if accumulate { 1.0 } else { 0.0 };
    let run_block = |block: usize, c_block: &mut [f32]| {
        let rows = PORTABLE_ROW_BLOCK.min(m - block * PORTABLE_ROW_BLOCK);
        // SAFETY: the block's rows are first_row..first_row + rows <= a.rows, so every
        // element (first_row + i, p) of `a` and (p, j) of `b` that sgemm reads lies inside its
        // slice (checked by StridedMat::new); `c_block` is an exclusive borrow that holds
        // (rows - 1) * ldc + n elements, written at i*ldc + j, aliasing neither input.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                n,
                1.0,
                a.ptr(block * PORTABLE_ROW_BLOCK, 0),
                a.row_stride as isize,
                a.col_stride as isize,
                b.ptr(0, 0),
                b.row_stride as isize,
                b.col_stride as isize,
                beta,
                c_block.as_mut_ptr(),
                ldc as isize,
                1,
            );
        }
    };
    let chunk = PORTABLE_ROW_BLOCK * ldc;
    if m > PORTABLE_ROW_BLOCK && should_parallelize(m * k * n) {
        c.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| run_block(i, o));
    } else {
        c.chunks_mut(chunk).enumerate().for_each(|(i, o)| run_block(i, o));
    }
}

/// A micro-kernel and the packing routines that feed it. The driver [`gemm_packed`] is
/// generic over this, so an instruction set only has to supply these functions.
trait MicroKernel {
    /// The element of the packed panels: `f32`, or (for the bf16 kernel) the bits of a bf16.
    type Packed: Copy;
    /// Rows of the register tile of `c`.
    const MR: usize;
    /// Columns of the register tile of `c`.
    const NR: usize;
    /// Whether the kernel can read a row-contiguous `a` where it lies ([`a_in_place`]); only
    /// for kernels whose `Packed` is `f32`, as the driver then hands it `a` itself.
    const READS_A_IN_PLACE: bool;

    /// Elements of one packed `b` panel of `kc` steps (and of the `a` panel's steps, the
    /// packing unit of k): `kc * NR` unless the kernel pads k.
    fn panel_len(kc: usize) -> usize {
        kc * Self::NR
    }

    /// Packs rows `i0..i0 + rows` (`rows <= MR`) and columns `p0..p0 + kc` of `a` into an
    /// `a` panel with zero rows past `rows`: a row panel `dst[i * A_ROW_STRIDE + p]` if `a`'s
    /// rows are contiguous, else a column panel `dst[p * MR + i]`.
    ///
    /// # Safety
    /// The CPU supports the kernel's features, the block lies inside `a`, and `dst` is valid
    /// for `MR * A_ROW_STRIDE` writes.
    unsafe fn pack_a(dst: *mut Self::Packed, a: &StridedMat, i0: usize, rows: usize, p0: usize, kc: usize);

    /// Packs rows `p0..p0 + kc` and columns `j0..j0 + cols` of `b` into `cols.div_ceil(NR)`
    /// panels of `panel_len(kc)` elements: for `f32` kernels column `j` goes to panel
    /// `t = j / NR` as `dst[t * kc * NR + p * NR + j % NR]`, and the last panel is
    /// zero-padded.
    ///
    /// # Safety
    /// The CPU supports the kernel's features, the block lies inside `b`, and `dst` is
    /// 64-byte aligned and valid for `cols.div_ceil(NR) * panel_len(kc)` writes.
    unsafe fn pack_b(dst: *mut Self::Packed, b: &StridedMat, p0: usize, kc: usize, j0: usize, cols: usize);

    /// The part of a tile of `rows x cols` (`rows <= MR`, `cols <= NR`) that
    /// [`MicroKernel::kernel`] computes and writes: at least that, rounded up to the tile
    /// sizes the kernel has code for.
    fn tile_extent(rows: usize, cols: usize) -> (usize, usize);

    /// `c[r x w] (+)= a[r x kc] * b_panel[kc x w]` with `(r, w) = tile_extent(rows, cols)`,
    /// where `c` has row stride `ldc`; adds to `c` when `accumulate`, else overwrites it
    /// without reading it. `a_row_stride` says where `a[i, p]` is: `a[p * MR + i]` (a column
    /// panel) if it is 0, else `a[i * a_row_stride + p]` (a row panel, or `a` itself), in
    /// the kernel's packing unit (the bf16 kernel's is a pair of steps). Along the way the
    /// kernel prefetches the lines of `prefetch` (at most one of each per step).
    ///
    /// # Safety
    /// The CPU supports the kernel's features; `a` holds `r` rows of `kc` steps as described;
    /// `b` is a packed panel of `kc` steps, 64-byte aligned; `c` is valid for reads and
    /// writes of an `r x w` tile with row stride `ldc`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        kc: usize,
        rows: usize,
        cols: usize,
        a: *const Self::Packed,
        a_row_stride: usize,
        b: *const Self::Packed,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        prefetch: [PrefetchLines; 2],
    );
}

/// `count` cache lines at `start + q * stride` floats (`q < count`) for a micro-kernel to
/// prefetch into L2 while it computes. The addresses may lie anywhere: a prefetch never faults.
#[derive(Clone, Copy, Debug)]
struct PrefetchLines {
    start: *const f32,
    stride: usize,
    count: usize,
}

impl PrefetchLines {
    const NONE: PrefetchLines = PrefetchLines { start: std::ptr::null(), stride: 0, count: 0 };
}

/// The cache lines of a block of `a` or `b` that a job will use next, handed out a few at a
/// time to the micro-kernel calls before that. Copying an operand at full speed from L3 or
/// memory waits on every line (the packing of `b` took 12-15 % of a 128x1000x1000 product,
/// half of that hidden by this; the next strip of a big `a` gained about 10 % on the im2col
/// shapes); the micro-kernel leaves the memory system idle, so it fetches them instead.
///
/// The block is a grid of cache lines: runs of contiguous floats (rows of a row-major
/// matrix, columns of a transposed one), each some lines long. Each call gets one evenly
/// strided segment along the longer side of the grid (`inner`), and the walk moves to the
/// next `outer` position when a segment reaches the end.
struct PrefetchWalk {
    base: *const f32,
    inner: usize,
    inner_stride: usize,
    outer: usize,
    outer_stride: usize,
    per_call: usize,
    i: usize,
    o: usize,
}

impl PrefetchWalk {
    /// No prefetching.
    const NONE: PrefetchWalk = PrefetchWalk {
        base: std::ptr::null(),
        inner: 0,
        inner_stride: 0,
        outer: 0,
        outer_stride: 0,
        per_call: 0,
        i: 0,
        o: 0,
    };

    /// The walk over `rows` and `cols` of `x`, spread over `calls` micro-kernel calls of at
    /// most `max_per_call` lines each.
    fn new(
        x: &StridedMat,
        rows: Range<usize>,
        cols: Range<usize>,
        calls: usize,
        max_per_call: usize,
    ) -> Self {
        let (run_len, runs, run_stride) = if x.col_stride == 1 {
            (cols.len(), rows.len(), x.row_stride)
        } else if x.row_stride == 1 {
            (rows.len(), cols.len(), x.col_stride)
        } else {
            return PrefetchWalk::NONE;
        };
        // One more line than the run needs, since a run need not start on a line boundary.
        let lines = run_len.div_ceil(16) + 1;
        let ((inner, inner_stride), (outer, outer_stride)) =
            if lines >= runs { ((lines, 16), (runs, run_stride)) } else { ((runs, run_stride), (lines, 16)) };
        // Twice the even share, as segments stop at the end of each inner stretch.
        let per_call = (2 * (lines * runs).div_ceil(calls.max(1))).min(max_per_call);
        let base = x.ptr(rows.start, cols.start);
        PrefetchWalk { base, inner, inner_stride, outer, outer_stride, per_call, i: 0, o: 0 }
    }

    /// The next segment of the walk (empty once it is done).
    fn next_lines(&mut self) -> PrefetchLines {
        if self.o >= self.outer {
            return PrefetchLines::NONE;
        }
        let count = self.per_call.min(self.inner - self.i);
        let start = self.base.wrapping_add(self.i * self.inner_stride + self.o * self.outer_stride);
        self.i += count;
        if self.i == self.inner {
            self.i = 0;
            self.o += 1;
        }
        PrefetchLines { start, stride: self.inner_stride, count }
    }
}

/// Whether the micro-kernel reads a row-contiguous `a` where it lies instead of from a packed
/// copy. Copying `a` at full speed right before use waits on memory when `a` is too big for
/// the caches (a quarter of the time of the 32768x1600x64 im2col product measured); the
/// kernel instead reads each row slowly and in order, which the hardware prefetchers keep
/// ahead of. Not when rows lie a multiple of 2 KiB apart: then the rows of a strip share a
/// few L1 cache sets and evict each other.
fn a_in_place(a: &StridedMat) -> bool {
    a.rows_contiguous() && !(a.row_stride * 4).is_multiple_of(2048)
}

/// Packs `a` rows `i0..i0+rows`, columns `p0..p0+kc` into a row panel
/// `dst[i * A_ROW_STRIDE + p]` (`a` row-contiguous: one copy per row), zero rows up to `mr`.
///
/// # Safety
/// `a` is row-contiguous, the block lies inside it, and `dst` is valid for
/// `mr * A_ROW_STRIDE` writes.
unsafe fn pack_a_rows(
    dst: *mut f32,
    a: &StridedMat,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    mr: usize,
) {
    for i in 0..mr {
        // SAFETY: row i of the panel is A_ROW_STRIDE >= kc floats inside dst; row i0+i
        // (i < rows) of a is contiguous from column p0 to p0+kc.
        unsafe {
            let row = dst.add(i * A_ROW_STRIDE);
            if i < rows {
                std::ptr::copy_nonoverlapping(a.ptr(i0 + i, p0), row, kc);
            } else {
                std::ptr::write_bytes(row, 0, kc);
            }
        }
    }
}

/// Packs `a` rows `i0..i0+rows`, columns `p0..p0+kc` into a column panel `dst[p * mr + i]`
/// element by element (any strides), zero-padding rows `rows..mr`.
///
/// # Safety
/// `dst` is valid for `kc * mr` writes; the block lies inside `a`.
unsafe fn pack_a_columns(
    dst: *mut f32,
    a: &StridedMat,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    mr: usize,
) {
    for p in 0..kc {
        for i in 0..mr {
            let v = if i < rows { a.at(i0 + i, p0 + p) } else { 0.0 };
            // SAFETY: p * mr + i < kc * mr.
            unsafe { *dst.add(p * mr + i) = v };
        }
    }
}

/// Packs `b` rows `p0..p0+kc`, columns `j0..j0+cols` into `nr`-column panels (as
/// [`MicroKernel::pack_b`]): copies of row segments when `b` is row-contiguous, else element
/// by element.
///
/// # Safety
/// `dst` is valid for `cols.div_ceil(nr) * kc * nr` writes; the block lies inside `b`.
unsafe fn pack_b_generic(
    dst: *mut f32,
    b: &StridedMat,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    nr: usize,
) {
    for t in 0..cols.div_ceil(nr) {
        let w = nr.min(cols - t * nr);
        for p in 0..kc {
            // SAFETY: row p of panel t is nr floats inside dst.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add((t * kc + p) * nr), nr) };
            if b.col_stride == 1 {
                let start = (p0 + p) * b.row_stride + j0 + t * nr;
                row[..w].copy_from_slice(&b.data[start..start + w]);
            } else {
                for (j, v) in row[..w].iter_mut().enumerate() {
                    *v = b.at(p0 + p, j0 + t * nr + j);
                }
            }
            row[w..].fill(0.0);
        }
    }
}

/// The body of every tier's [`MicroKernel::kernel`]: picks the const-generic instance of the
/// tier's own `kernel` function for the tile's padded size (`rows` rounded up to a multiple of
/// the smallest row count, one or two vectors of `lanes` columns) and for the layout of `a`
/// (a column panel when `a_row_stride` is 0), so that edge tiles do not pay for the full tile.
macro_rules! dispatch_tile {
    ($kc:ident, $rows:ident, $cols:ident, $a:ident, $a_row_stride:ident, $b:ident, $c:ident, $ldc:ident,
     $accumulate:ident, $prefetch:ident; rows [$r1:literal, $r2:literal, $r3:literal], lanes $lanes:literal) => {{
        macro_rules! run {
            ($r:literal, $vecs:literal) => {
                // SAFETY: forwarded contract; tile_extent(rows, cols) is $r x lanes*$vecs.
                unsafe {
                    if $a_row_stride == 0 {
                        kernel::<true, $r, $vecs>($kc, $a, 0, $b, $c, $ldc, $accumulate, $prefetch)
                    } else {
                        kernel::<false, $r, $vecs>(
                            $kc,
                            $a,
                            $a_row_stride,
                            $b,
                            $c,
                            $ldc,
                            $accumulate,
                            $prefetch,
                        )
                    }
                }
            };
        }
        match ($rows.next_multiple_of($r1), $cols > $lanes) {
            ($r3, true) => run!($r3, 2),
            ($r3, false) => run!($r3, 1),
            ($r2, true) => run!($r2, 2),
            ($r2, false) => run!($r2, 1),
            (_, true) => run!($r1, 2),
            (_, false) => run!($r1, 1),
        }
    }};
}
use dispatch_tile;

mod driver;
use driver::gemm_packed;
#[cfg(test)]
use driver::Plan;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx2;

mod bf16;
pub use bf16::{
    bf16_backend, bf16_to_f32, f32_to_bf16, round_to_bf16, sgemm_bf16, sgemm_bf16_bias, sgemm_bf16_ld,
    sgemm_bf16_with, Bf16Backend,
};

mod bf16_prepacked;
pub use bf16_prepacked::{
    f32_to_bf16_slice, sgemm_bf16_prepacked, sgemm_bf16_prepacked_rows, Bf16B, Bf16Rows, PackedBf16B,
};

mod f32_prepacked;
pub use f32_prepacked::{sgemm_prepacked_b, PackedF32B};

mod precision;
pub use precision::{sgemm_bias_in, sgemm_in, sgemm_ld_in, Precision};

#[cfg(target_arch = "x86_64")]
mod avx512bf16;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bf16;
#[cfg(test)]
mod tests_prepacked;
