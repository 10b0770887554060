"""End to end: a tiled GEMM. Strided tile loads from row-major matrices, f32 accumulation across
K tiles, an f16 store; numbers against numpy and cycles derived from docs/hardware-model.md."""
import numpy as np
import pytest

import kernbench


def tiled_gemm(a_ptr, b_ptr, c_ptr, M, N, K, BM, BN, BK, *, tl):
    """C (M, N) = A (M, K) @ B (K, N); all row-major f16, this PE's own shards."""
    for i in range(0, M, BM):
        for j in range(0, N, BN):
            acc = None
            for k in range(0, K, BK):
                a = tl.load(a_ptr + 2 * (i * K + k), shape=(BM, BK), dtype="f16", stride=K)
                b = tl.load(b_ptr + 2 * (k * N + j), shape=(BK, BN), dtype="f16", stride=N)
                d = tl.dot(a, b)
                acc = d if acc is None else acc + d
            tl.store(c_ptr + 2 * (i * N + j), acc, stride=N)


def reference(a, b):
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float16)


def test_one_tile_cycles_by_hand():
    ctx = kernbench.Context("default")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64)).astype(np.float16)
    b = rng.standard_normal((64, 64)).astype(np.float16)
    A, B = ctx.put(a, pe=(0, 0)), ctx.put(b, pe=(0, 0))
    C = ctx.empty((64, 64), "f16")
    r = ctx.launch(tiled_gemm, (1, 1), A, B, C, 64, 64, 64, 64, 64, 32)
    np.testing.assert_allclose(ctx.read(C, (0, 0)).astype(np.float32), reference(a, b), rtol=2e-3, atol=2e-3)
    # Each tile load is 64 x 32 or 32 x 64 f16 = 4096 B = 8 bursts x 2 cycles + 150 = 166;
    # the DMA unit runs a0, b0, a1, b1 back to back: a0 ends 166, b0 332, a1 498, b1 664.
    # dot (64,32)x(32,64): folds = 2 * 2 = 4, fold = max(32 + 32 + 32 - 2, ceil(64*32*2/256)) = 94
    # -> 376 cycles. dot0 starts at 332 (b0 ready), ends 708; dot1 starts at 708 (GEMM free,
    # b1 ready since 664), ends 1084. add (64,64) f32: ceil(4096/64) + 8 = 72 -> 1156.
    # store 64x64 f16 = 8192 B = 16 bursts x 2 + 150 = 182 -> 1338.
    assert r.cycles == 1338
    assert list(r.engine.cmd_end) == [166, 332, 708, 498, 664, 1084, 1156, 1338]
    assert r.flops == 2 * 64 * 64 * 64
    assert r.label(2) == "dot (64,32)x(32,64) f16"
    t = ctx.launch(tiled_gemm, (1, 1), A, B, C, 64, 64, 64, 64, 64, 32, mode="timing")
    assert t.cycles == r.cycles


@pytest.mark.parametrize("pes", [1, 4])
def test_multi_tile_gemm_rows_sharded_over_pes(pes):
    M, N, K = 128, 96, 96
    BM, BN, BK = 32, 32, 48
    ctx = kernbench.Context("default")
    rng = np.random.default_rng(pes)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    A = ctx.shard(a, axis=0, over="pe", parts=pes)
    B = ctx.replicate(b)
    C = ctx.empty((M // pes, N), "f16")
    r = ctx.launch(tiled_gemm, (pes, 1), A, B, C, M // pes, N, K, BM, BN, BK)
    got = ctx.gather(C, over="pe", axis=0, parts=pes)
    assert got.shape == (M, N)
    np.testing.assert_allclose(got.astype(np.float32), reference(a, b), rtol=5e-3, atol=5e-3)
    assert r.flops == 2 * M * N * K
    # every PE did the same work: (M/pes/BM) * (N/BN) * (K/BK) dots each
    dots = (M // pes // BM) * (N // BN) * (K // BK)
    assert list(r.unit_counters["commands"][:pes, 0]) == [dots] * pes
    t = ctx.launch(tiled_gemm, (pes, 1), A, B, C, M // pes, N, K, BM, BN, BK, mode="timing")
    assert t.cycles == r.cycles and np.array_equal(t.unit_counters, r.unit_counters)


def test_timing_mode_needs_shapes_only():
    ctx = kernbench.Context("default")
    A, B, C = ctx.empty((64, 64), "f16"), ctx.empty((64, 64), "f16"), ctx.empty((64, 64), "f16")
    r = ctx.launch(tiled_gemm, (1, 1), A, B, C, 64, 64, 64, 64, 64, 32, mode="timing")
    assert r.cycles == 1338  # as derived in test_one_tile_cycles_by_hand
    assert not C.has_data  # timing mode computes and writes nothing
