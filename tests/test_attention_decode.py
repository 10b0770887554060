"""The decode ring-attention kernel (attention_mesh_mlo_kernel): numerics, causal decode, the
schedule read off the engine's event record, and a cycle count derived by hand.

Numerics: every rank's f16 output against softmax(Q K^T / sqrt(d)) V in f64 (causal: with the
query rows at the S_q newest positions), within 2e-3 + 2e-2 |ref| everywhere and 2e-3 where
|ref| <= 2, at d 64, 80, 96, 128, score std up to 30, S_q 1 and > 1, n_ranks 1, 2, 3, 8, both
rank axes, GQA groups 1, 4, 8, o pieces whole and split.
"""
import contextlib
from unittest import mock

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import Opcode, Unit
from kernbench.diag import ATOL, RTOL, attention_reference
from kernbench.hw import load_hw
from kernbench.kernels import _decode, attention_mesh_mlo_kernel

MESH8 = load_hw("mesh8")  # 8 cubes x 8 PEs: an 8-rank line over the PEs of a cube or over cubes
PPC = MESH8.pes_per_cube


def launch(n, G=4, rank_axis=0, *, d=32, S_q=1, S=12, block=8, h_kv=2, causal=False, std=1.0,
           seed=0, mode="functional", record_events=False, piece_cols=None):
    """One decode launch on MESH8: random f16 data, K/V sharded contiguously over the ranks.
    ``std`` scales Q so the scores q.k / sqrt(d) have about that standard deviation;
    ``piece_cols`` forces the width of the o pieces. Returns (result, [output of each rank], ref)."""
    rng = np.random.default_rng(seed)
    h_q = h_kv * G
    k = rng.standard_normal((n, S, h_kv, d)).astype(np.float16)
    v = rng.standard_normal((n, S, h_kv, d)).astype(np.float16)
    q = (std * rng.standard_normal((S_q, h_q, d))).astype(np.float16)
    ctx = kernbench.Context(MESH8)
    scope = "pe" if rank_axis == 0 else "cube"
    ctx.install_sfr(scope=scope, ring=False)
    kp = ctx.shard(k, axis=0, over=scope, parts=n)
    vp = ctx.shard(v, axis=0, over=scope, parts=n)
    qp = ctx.replicate(q)
    op = ctx.empty((S_q, h_q, d), "f16")
    grid = (n, 1) if rank_axis == 0 else (PPC, n)
    patch = (mock.patch.object(_decode, "_piece_cols", lambda *a: piece_cols) if piece_cols
             else contextlib.nullcontext())
    with patch:
        r = ctx.launch(attention_mesh_mlo_kernel, grid, qp, kp, vp, op, S_q, S, h_q, h_kv, d, n, rank_axis,
                       block, causal=causal, mode=mode, record_events=record_events)
    if mode != "functional":
        return r, None, None
    pos = {}
    if causal:
        pos = dict(q_pos=n * S - S_q + np.arange(S_q), k_pos=np.arange(n * S))
    ref = attention_reference(q, k.reshape(n * S, h_kv, d), v.reshape(n * S, h_kv, d), **pos)
    outs = [ctx.read(op, (i, 0) if rank_axis == 0 else (0, i)).reshape(S_q, h_q, d) for i in range(n)]
    return r, outs, ref


def errors(outs, ref):
    """(max abs error, max abs error where |ref| <= 2, every element within ATOL + RTOL |ref|)."""
    err = np.stack([np.abs(o.astype(np.float64) - ref) for o in outs])
    within = bool(np.all(err <= ATOL + RTOL * np.abs(ref))) and all(np.isfinite(o).all() for o in outs)
    small = np.abs(ref) <= 2
    return float(err.max()), float(err[:, small].max()) if small.any() else 0.0, within


# ------------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("G", [1, 4, 8])
@pytest.mark.parametrize("rank_axis", [0, 1])
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_matches_reference(n, rank_axis, G, causal):
    for d in (64, 80, 96, 128):
        for S_q in (1, 3):
            for std in (1.0, 30.0):
                _, outs, ref = launch(n, G, rank_axis, d=d, S_q=S_q, causal=causal, std=std, seed=d + S_q)
                worst, worst_small, within = errors(outs, ref)
                assert within, (d, S_q, std, worst)
                assert worst_small <= 2e-3, (d, S_q, std, worst_small)


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("d", [64, 96, 128])
def test_matches_reference_with_split_pieces(n, d):
    """o cut into 32-column pieces (what long lines use) on lines short enough to test here."""
    for causal in (False, True):
        _, outs, ref = launch(n, 8, 1, d=d, S_q=3, causal=causal, std=30.0, piece_cols=32)
        worst, worst_small, within = errors(outs, ref)
        assert within and worst_small <= 2e-3, (causal, worst, worst_small)


@pytest.mark.parametrize("S_q", [5, 8, 10, 12])
def test_causal_rows_older_than_a_rank(S_q):
    """Three ranks of 4 keys, S_q newest rows of 12 tokens: the oldest rows see none of the last
    rank's keys (rank 2 holds positions 8..11, row 0 sits at 12 - S_q); S_q 12 is a whole prefill,
    row 0 seeing key 0 alone. Those rows' partials from such a rank are all masked scores (lse
    about -1e30, weight 0 in every merge): the output is the reference's and finite."""
    for piece_cols in (None, 16):
        _, outs, ref = launch(3, 4, 0, d=32, S_q=S_q, S=4, block=3, causal=True, std=30.0,
                              piece_cols=piece_cols)
        worst, worst_small, within = errors(outs, ref)
        assert within and worst_small <= 2e-3, (piece_cols, worst)


@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.int64(1), np.array(True)])
def test_causal_must_be_a_bool(bad):
    with pytest.raises(KernelError, match=r"causal must be True or False, got"):
        launch(2, causal=bad, mode="timing")


@pytest.mark.parametrize("flag", [True, False])
def test_causal_takes_a_numpy_bool_as_its_value(flag):
    """A sweep's axis of np.array([True, False]) gives numpy bools: read as the bool they are,
    as tl's own flags read them (the same outputs and cycles as the Python bool's)."""
    a, outs_a, _ = launch(2, causal=flag, S_q=3)
    b, outs_b, _ = launch(2, causal=np.bool_(flag), S_q=3)
    assert a.cycles == b.cycles
    for x, y in zip(outs_a, outs_b):
        np.testing.assert_array_equal(x, y)


def test_causal_needs_enough_keys():
    with pytest.raises(KernelError, match=r"causal needs S_q <= n_ranks \* S_kv_per_rank .* got S_q 25 > 2 \* 12"):
        launch(2, S_q=25, causal=True, mode="timing")
    launch(2, S_q=24, causal=True, mode="timing")  # every token a query row: allowed


# ------------------------------------------------------------------- the schedule, from events
# 8 ranks over cubes (one PE and memory channel each), Llama-like heads (G 8, d 128), 4 folds of
# 256 keys per group and 2 groups, o in 32-column pieces: GEMM-bound, every kind of rank present.
SCHED = dict(n=8, G=8, rank_axis=1, d=128, S=1024, block=256, h_kv=2, piece_cols=32)


@pytest.fixture(scope="module")
def sched():
    r, _, _ = launch(**SCHED, mode="timing", record_events=True)
    return r


def _pe_events(r, g):
    """PE g's events in start order, with each one's command."""
    ev = np.sort(r.events[r.events["pe"] == g], order=["start", "cmd"])
    return ev, r.program.commands[ev["cmd"]]


def _is_score(cmds):
    return (cmds["opcode"] == Opcode.DOT) & (cmds["k"] == SCHED["d"])


def _is_pv(cmds):
    return (cmds["opcode"] == Opcode.DOT) & (cmds["k"] == SCHED["block"])


def test_no_store_before_the_last_load(sched):
    for g in sched.working_pes:
        ev, cmds = _pe_events(sched, g)
        loads, stores = ev[cmds["opcode"] == Opcode.LOAD], ev[cmds["opcode"] == Opcode.STORE]
        assert len(stores) == SCHED["h_kv"]  # one store of each group's output
        assert stores["start"].min() >= loads["end"].max()


def test_every_dot_before_the_first_exchange_merge(sched):
    """Folds first: the first vector command reading a received tensor starts after the last dot."""
    for g in sched.working_pes:
        ev, cmds = _pe_events(sched, g)
        received = set(cmds["dst"][cmds["opcode"] == Opcode.RECV].tolist())
        reads = np.isin(cmds["src0"], list(received)) | np.isin(cmds["src1"], list(received)) | \
            np.isin(cmds["src2"], list(received))
        merges = ev[(ev["unit"] == Unit.VECTOR) & reads]
        dots = ev[cmds["opcode"] == Opcode.DOT]
        assert len(merges) and merges["start"].min() >= dots["end"].max()


def test_score_dot_runs_ahead_of_the_previous_pv(sched):
    """GEMM program order is S0, S1, PV0, S2, PV1, ... (PV = 4 column-piece dots), across the two
    groups; and in this GEMM-bound launch the GEMM unit never idles from its first dot to its last:
    the next block's keys have landed, and the softmax is done, before each dot is due."""
    folds = SCHED["h_kv"] * SCHED["S"] // SCHED["block"]
    for g in sched.working_pes:
        cmds = sched.program.pe_commands(g)
        dots = cmds[cmds["opcode"] == Opcode.DOT]
        kinds = "".join("S" if s else "P" for s in _is_score(dots))
        assert kinds == "S" + "SPPPP" * (folds - 1) + "PPPP"
        ev, evc = _pe_events(sched, g)
        gemm = ev[ev["unit"] == Unit.GEMM]
        assert np.array_equal(gemm["start"][1:], gemm["end"][:-1])


def test_loads_double_buffered(sched):
    """The K block of fold t >= 2 is loaded after the score dot of fold t - 2 ends, not earlier
    (two blocks ahead at most), so peak SRAM does not grow with the context: 8 times the keys, the
    same peak (a 64 KiB K block more would show; 1 KiB of exchange tensors may come and go)."""
    for g in sched.working_pes:
        ev, cmds = _pe_events(sched, g)
        scores = ev[_is_score(cmds)]
        k_loads = ev[(cmds["opcode"] == Opcode.LOAD) & (cmds["nbytes"] == SCHED["block"] * SCHED["d"] * 2)]
        assert len(k_loads) == len(scores)
        assert np.all(k_loads["start"][2:] >= scores["end"][:-2])
    peaks = [int(launch(**dict(SCHED, S=S), mode="timing")[0].peak_sram.max()) for S in (1024, 8192)]
    assert abs(peaks[1] - peaks[0]) <= 1024 + 32


def test_messages_split_and_counted(sched):
    """One exchange, with the partials cut into messages. 8 ranks: west half 0..3 scans E, east
    half 4..7 scans W; per group (2) a partial is its lse (m and log l, 8 x 1 f32 each) and k = 4
    pieces (8 x 32 f32, 1 KiB: no message carries a whole 4 KiB o), the output 4 pieces of
    (8 x 32 f16).
      rank 0 (end):     sends its partial E (2 x 6), receives the output from E (2 x 4)
      ranks 1, 2:       partial in from W (2 x 6) and on E; output in from E (2 x 4) and on W
      rank 3 (centre):  partial in from W (2 x 6); group 0 is its turn: rank 4's half in (6), the
                        output back E (4); group 1 is rank 4's: its half out E (6), output in (4)
    and the east half mirrored."""
    R, k = SCHED["G"], 4
    uc = sched.unit_counters["commands"]
    want = {  # rank: (RX_W, RX_E, TX_E, TX_W)
        0: (0, 8, 12, 0), 1: (12, 8, 12, 8), 2: (12, 8, 12, 8), 3: (12, 10, 10, 8),
        4: (10, 12, 8, 10), 5: (8, 12, 8, 12), 6: (8, 12, 8, 12), 7: (8, 0, 0, 12)}
    for rank, counts in want.items():
        g = rank * PPC
        assert (uc[g, Unit.RX_W], uc[g, Unit.RX_E], uc[g, Unit.TX_E], uc[g, Unit.TX_W]) == counts, rank
        assert counts == expected_messages(8, rank, SCHED["h_kv"], k)
    recvs = sched.program.commands[sched.program.commands["opcode"] == Opcode.RECV]
    assert recvs["nbytes"].max() == R * 32 * 4
    assert sorted(set(recvs["nbytes"].tolist())) == [R * 4, R * 32 * 2, R * 32 * 4]
    assert k * 32 == SCHED["d"]


def expected_messages(n, rank, h_kv, k):
    """(RX_W, RX_E, TX_E, TX_W) commands of a rank: the west half [0, c) scans E, the east half
    [c, n) W, c = ceil(n / 2). Per group a partial is 2 + k messages (lse: m and log l; k pieces),
    the output k.
    Off the centre: the partial comes in from the far side (but at an end) and goes on toward the
    centre, the output comes back and goes on (but at an end). A centre swaps with the other centre:
    in its turns (even groups west, odd east) the other half's partial in and the output back; in
    the other centre's, its half out and the output in."""
    if n == 1:
        return (0, 0, 0, 0)
    c = (n + 1) // 2
    west = rank < c
    end = rank in (0, n - 1)
    far_in = 0 if end else h_kv * (2 + k)
    far_out = 0 if end else h_kv * k
    if rank in (c - 1, c):
        mine = sum((g % 2 == 0) == west for g in range(h_kv))
        near_in = mine * (2 + k) + (h_kv - mine) * k
        near_out = mine * k + (h_kv - mine) * (2 + k)
    else:
        near_in, near_out = h_kv * k, h_kv * (2 + k)
    return (far_in, near_in, near_out, far_out) if west else (near_in, far_in, far_out, near_out)


@pytest.mark.parametrize("piece_cols", [None, 16])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_every_partial_and_output_received_once(n, piece_cols):
    """Message counts of every rank from the engine's counters (d 32: o whole, or in 2 pieces of
    16 columns), and every rank's output right."""
    h_kv, k = 2, 32 // (piece_cols or 32)
    r, outs, ref = launch(n, 4, 0, h_kv=h_kv, piece_cols=piece_cols)
    uc = r.unit_counters["commands"]
    for rank in range(n):
        got = (uc[rank, Unit.RX_W], uc[rank, Unit.RX_E], uc[rank, Unit.TX_E], uc[rank, Unit.TX_W])
        assert got == expected_messages(n, rank, h_kv, k), rank
    assert errors(outs, ref)[2]


@pytest.mark.parametrize("a", [64, 512, 2048, 65504])
@pytest.mark.parametrize("variant", ["ring_pe", "ring_cube", "two_level"])
def test_partials_merge_exactly_at_huge_scores(variant, a):
    """A numerical oracle's case: 2 ranks of 2 keys, q = k = a in every element (d 16), so the
    scores tie at 16 a**2 / 4 = 4 a**2 except rank 1's second key (k = -a: weight 0). Rank 0's
    two keys have v = 1, rank 1's tied key v = -1: softmax gives (1 + 1 - 1) / 3 = 1/3 exactly.
    The partials' lse was one f32, m + log l: at a = 512 (scores 1.05e6, f32 step 0.125) log 2
    became 0.75, weights 0.68:0.32 and the output 0.358; from a = 2048 (step 2) log 2 was lost
    and the output 0. The lse is now the pair (m, log l), merged by their differences: the
    output is f16(1/3) (0.333252) on every rank, as prefill gives, at any magnitude."""
    from kernbench.kernels import attention_decode_two_level_kernel
    d, n = 16, 2
    q = np.full((1, 1, d), a, np.float16)
    k = np.full((n, 2, 1, d), a, np.float16)
    k[1, 1] = -a
    v = np.zeros((n, 2, 1, d), np.float16)
    v[0], v[1, 0], v[1, 1] = 1, -1, 5
    ctx = kernbench.Context(MESH8)
    op = ctx.empty((1, 1, d), "f16")
    if variant == "two_level":
        ctx.install_sfr(scope="two_level")
        kp, vp = ctx.shard(k, axis=0, over="all", parts=n), ctx.shard(v, axis=0, over="all", parts=n)
        ctx.launch(attention_decode_two_level_kernel, (n, 1), ctx.replicate(q), kp, vp, op, 1, 2, 1, 1, d,
                   n, 1, 2)
        pes = [(0, 0)]
    else:
        scope = "pe" if variant == "ring_pe" else "cube"
        ctx.install_sfr(scope=scope, ring=False)
        kp, vp = ctx.shard(k, axis=0, over=scope, parts=n), ctx.shard(v, axis=0, over=scope, parts=n)
        grid = (n, 1) if scope == "pe" else (PPC, n)
        ctx.launch(attention_mesh_mlo_kernel, grid, ctx.replicate(q), kp, vp, op, 1, 2, 1, 1, d, n,
                   0 if scope == "pe" else 1, 2)
        pes = [(r, 0) if scope == "pe" else (0, r) for r in range(n)]
    for pe in pes:
        assert ctx.read(op, pe).ravel().tolist() == [float(np.float16(1 / 3))] * d, pe


# ---------------------------------------------------------------------- cycles derived by hand
def test_cycles_by_hand():
    """One query row, one head (G 1, h_kv 1), d 32, one block of 32 keys per rank
    (docs/hardware-model.md: R = C = 32, 64 lanes, latency 8; DMA 256 B/cycle per burst of
    512 B, 150 latency; links 32 B/cycle, 50 per hop).

    One rank (a PE alone on its channel):
      DMA  q (1, 32) f16, 64 B: 1 + 150                               0 - 151
      VEC  cast q f32, mul by 1/sqrt(d): 32 elements, 1 + 8 each    151 - 169
      DMA  K (32, 32) f16, 2 KiB = 4 bursts: 8 + 150                  151 - 309
      GEMM S = q K^T (1,32)x(32,32): 1 fold, 32 + 32 + 32 - 2 = 94     309 - 403
      DMA  V (32, 32): 158                                            309 - 467
      VEC  rowmax: 1 x (1 + log2 64) + 8 = 15; m = max(rowmax, M_FLOOR) 9; s - m 9;
           exp 4 + 8 = 12; cast 9; rowsum 15 and + L_FLOOR 9 (l; the first fold: no
           rescale)                                                  403 - 481
      VEC  1 / l: div 4 + 8 = 12; log l 12 (the lse is (m, log l))    481 - 505
      GEMM P V (1,32)x(32,32): 94, once V is in                       467 - 561
      VEC  o * (1 / l) 9; cast to f16 9 (one rank: the output)        561 - 579
      DMA  store (1, 32) f16: 1 + 150                                 579 - 730

    Two ranks over cubes: both fold as above (m at 427, log l at 505, o * (1 / l) at 570).
    Rank 1 (east; group 0 is rank 0's turn) sends its lse, m (4 B: 1 cycle) 427 - 428 and log l
    505 - 506, landing at rank 0 at 478 and 556, and its o (128 B: 4 cycles) 570 - 574, landing
    at 624. Rank 0 (the received partial is b), after its own o * (1 / l) (561 - 570), each an
    (R, 1) op of 9 cycles: M = max(m0, m1) 570 - 579, m0 - M 588, m1 - M 597, t0 = log l0 + (m0 -
    M) 606, t1 = log l1 + (m1 - M) 615, delta = t0 - t1 624, w = sigmoid(delta) 12 - 636, u = 1 -
    w 645; o0 * w 654; o1 * u (o1 landed at 624) 663; add 672; cast 681. It stores (681 - 832)
    and sends the output (64 B: 2 cycles, 681 - 683) to rank 1, which has it at 733 and stores
    it: 733 + 151 = 884."""
    r, _, _ = launch(1, 1, 0, d=32, S=32, block=32, h_kv=1, mode="timing")
    assert r.cycles == 730
    r, _, _ = launch(2, 1, 1, d=32, S=32, block=32, h_kv=1, mode="timing")
    assert r.cycles == 884
