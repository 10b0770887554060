"""The prefill kernel's schedule: the software pipeline, causal skipping and masking, the zigzag
layout's balance, and its argument checks. Numerics against f64 live in test_attention_accuracy.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import Opcode, Unit
from kernbench.diag import attention_reference, check_output, panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.kernels import attention_mesh_kv_kernel
from kernbench.kernels.attention import zigzag_merge, zigzag_positions, zigzag_split


def _launch(n, S, h_q, h_kv, d, bq, bkv, *, causal, mode="timing", record_events=False, seed=0):
    """n ranks on the PEs of one cube; returns (ctx, result, out in sequence order or None, ref)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": max(n, 2)})
    ctx.install_sfr("pe")
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n * S, h_q, d)).astype(np.float16)
    k = rng.standard_normal((n * S, h_kv, d)).astype(np.float16)
    v = rng.standard_normal((n * S, h_kv, d)).astype(np.float16)
    split = zigzag_split if causal else (lambda x, n: x.reshape((n, S) + x.shape[1:]))
    qp, kp, vp = (ctx.shard(split(x, n), axis=0, over="pe", parts=n) for x in (q, k, v))
    op = ctx.empty((S, h_q, d), "f16")
    r = ctx.launch(attention_mesh_kv_kernel, (n, 1), qp, kp, vp, op, S, S, h_q, h_kv, d, n, 0, bq, bkv,
                   causal=causal, mode=mode, record_events=record_events)
    if mode != "functional":
        return ctx, r, None, None
    parts = np.stack([ctx.read(op, (rank, 0)).reshape(S, h_q, d) for rank in range(n)])
    out = zigzag_merge(parts) if causal else parts.reshape(n * S, h_q, d)
    pos = np.arange(n * S)
    ref = attention_reference(q, k, v, **(dict(q_pos=pos, k_pos=pos) if causal else {}))
    return ctx, r, out, ref


def _gemm(r, pe):
    """(m, n, k, start, end) of every GEMM command of global PE ``pe``, in program order."""
    cmds = r.program.pe_commands(pe)
    ev = r.events[r.events["pe"] == pe]
    start = np.empty(len(cmds), np.int64)
    end = np.empty(len(cmds), np.int64)
    start[ev["cmd"]], end[ev["cmd"]] = ev["start"], ev["end"]
    g = np.flatnonzero(cmds["unit"] == int(Unit.GEMM))
    return cmds["m"][g], cmds["n"][g], cmds["k"][g], start[g], end[g]


def test_score_dot_of_the_next_fold_is_issued_before_this_folds_pv():
    # d = 128 and 512 keys per block: a score dot is (R, 512, 128), a P.V dot (R, 128, 512)
    n, S, d = 2, 512, 128
    _, r, _, _ = _launch(n, S, 8, 1, d, 32, 512, causal=False, record_events=True)
    m, nn, k, start, end = _gemm(r, 0)
    kinds = ["QK" if kk == d else "PV" for kk in k]
    # fold t's P.V follows fold t + 1's scores: QK QK PV QK PV ... QK PV PV
    assert kinds[:3] == ["QK", "QK", "PV"]
    assert kinds[-2:] == ["PV", "PV"]
    assert all(a != b for a, b in zip(kinds[1:-1:2], kinds[2:-1:2])), kinds
    # and the GEMM unit never waits once the pipeline is full: fold t's softmax starts under
    # P.V(t - 1) and what outlasts it runs under S(t + 1). R = 32 x 8 = 256 rows, 512 keys: the
    # score dot is 8 x 16 folds x 190 = 24,320 cycles, the P.V dot 8 x 4 x (512 + 62) = 18,368;
    # the vector chain two row reductions of 256 x (8 + 6) + 8 = 3,592, sub, exp and cast over
    # 131,072 elements (2,056 + 8,200 + 2,056) and (R, 1) / (R, d) updates of a few hundred:
    # ~20,000 < 18,368 + 24,320
    gaps = start[1:] - end[:-1]
    first_pv = kinds.index("PV")
    assert gaps[first_pv:].max() == 0, f"GEMM idle {gaps[first_pv:].max()} cycles between dots"


def test_a_folds_softmax_runs_under_the_previous_folds_pv():
    """docs/kernels.md, "The pipeline": GEMM order S0 S1 PV0 S2 PV1 ..., so fold t's softmax,
    issued when S(t) ends, runs under P.V(t - 1), the dot issued right after S(t), and fold
    t - 1's o update under S(t + 1) (a review read it off the record: the docs had said under
    S(t + 1)). The 16K panel's fold, (256 rows, 2048 keys, d 128), on 2 ranks: P.V is 8 x 4 x
    (2048 + 62) = 67,520 cycles; the softmax's sub, exp and cast over 524,288 elements 8,200 +
    32,776 + 8,200 = 49,176 and its rowmax 256 x (32 + 6) + 8 = 9,736: 58,912 < 67,520."""
    n, S, d = 2, 2048, 128
    _, r, _, _ = _launch(n, S, 8, 1, d, 32, 2048, causal=False, record_events=True)
    cmds = r.program.pe_commands(0)
    ev = r.events[r.events["pe"] == 0]
    start = np.empty(len(cmds), np.int64)
    end = np.empty(len(cmds), np.int64)
    start[ev["cmd"]], end[ev["cmd"]] = ev["start"], ev["end"]
    g = np.flatnonzero(cmds["unit"] == int(Unit.GEMM))
    score = cmds["k"][g] == d
    assert score[:3].tolist() == [True, True, False]  # S0 S1 PV0

    def under(i):  # "S" or "PV": the dot the GEMM unit runs when command i starts
        (j,) = np.flatnonzero((start[g] <= start[i]) & (end[g] > start[i]))
        return "S" if score[j] else "PV"

    vec = np.flatnonzero((cmds["unit"] == int(Unit.VECTOR)) & (cmds["opcode"] == int(Opcode.VEC)))
    soft = vec[cmds["n"][vec] == 256 * 2048]  # sub, exp, cast: 3 a fold
    assert len(soft) == 3 * 2 * (S // 32)  # 2 arrivals a query block
    assert [under(i) for i in soft[:3]] == ["S"] * 3  # fold 0: no P.V before it, under S1
    assert {under(i) for i in soft[3:]} == {"PV"}
    # the o update (R, d) = 32,768 elements, a mul and an add a fold: under the score dots
    o = vec[cmds["n"][vec] == 256 * d]
    on_s = sum(max(0, min(end[i], end[j]) - max(start[i], start[j])) for i in o for j in g[score])
    on_pv = sum(max(0, min(end[i], end[j]) - max(start[i], start[j])) for i in o for j in g[~score])
    assert on_s > 50 * on_pv, (on_s, on_pv)


def test_gemm_busy_through_a_16k_launch_and_the_attainable_bound():
    # the milestone claim on a shape the suite can afford: 4K context on the default cube gives
    # every rank 512 rows; GEMM must be busy >= 99% of the launch on every working PE
    from kernbench.diag import run_panel

    hw = load_hw("default")
    p = run_panel(panel_spec("single_user_prefill", hw, shape="llama70b", context=4096), hw)
    gemm = p.result.utilization("GEMM")
    assert gemm.min() >= 0.99, gemm
    cycles, resource = p.attainable()
    assert resource == "GEMM" and cycles <= p.result.cycles <= cycles * 1.01


def test_causal_gemm_work_derived_by_hand_and_equal_on_every_rank():
    # n = 2 ranks, 8 rows each (zigzag chunks of 4: rank 0 holds positions 0-3 and 12-15, rank 1
    # 4-7 and 8-11), G = 1, d = 16, block_q 2, block_kv 4 (one block per chunk). Every dot has
    # R = 2 rows, so one fold of the 32 x 32 array (docs/hardware-model.md):
    #   score dot (2, n) x (n, 16):  K = d = 16:  16 + 32 + 32 - 2 = 78 cycles
    #   P.V dot   (2, n) x (n, 16):  K = n:        n + 62 cycles
    # Rank 0, phase 0 (queries 0,1 and 12,13): own low block 0-3 -> q(0,1): key 0 seen by both
    # rows (1 key, unmasked) + key 1 (1 key, masked), q(12,13): all 4; rank 1's low block 4-7 ->
    # q(12,13): 4 (q(0,1) skipped); own high block 12-15 -> q(12,13): 1 + 1 masked; rank 1's
    # high block 8-11 -> q(12,13): 4. Seven folds: 7 x 78 + 4 x (1 + 62) + 3 x (4 + 62) = 996.
    # Phase 1 (queries 2,3 and 14,15): the diagonal parts are 3 keys + 1 masked:
    # 7 x 78 + 2 x (3 + 62) + 2 x (1 + 62) + 3 x 66 = 1000. Rank 1 folds the mirror image
    # (rank 0's low block for both query blocks, its high block for none): the same 996 + 1000.
    _, r, _, _ = _launch(2, 8, 1, 1, 16, 2, 4, causal=True)
    busy = r.unit_counters["busy"][[0, 1], int(Unit.GEMM)]
    assert busy.tolist() == [1996, 1996]
    # non-causal: 2 phases x 4 arrivals x 1 query block, every fold 4 keys: 8 x (78 + 66)
    _, r, _, _ = _launch(2, 8, 1, 1, 16, 2, 4, causal=False)
    assert r.unit_counters["busy"][[0, 1], int(Unit.GEMM)].tolist() == [2 * 8 * 144] * 2


def test_causal_k_v_groups_drain_their_pipeline_and_replay_from_the_third():
    """Causal: a K/V group's folds are all finished at its end (its last P.V issued before the
    next group's first score dot), so no group reads the last one's tensors, and tl.range
    proves the repetition from groups 0 and 1 (replay_first): every group after them is
    replayed. (Causal phases differ in their diagonal folds, so a traced group runs the
    kernel's Python for every phase: 2 of h_kv groups traced instead of 3.)"""
    # n = 2 ranks, 8 rows each, G = 1, d = 16, block_q 2, block_kv 4, as in the test above:
    # 2 phases of 7 folds per group and rank, 14 score dots (K = d = 16) and 14 P.V dots
    # (K = the fold's keys, at most 4) per group; h_kv = 4 groups
    _, r, _, _ = _launch(2, 8, 4, 4, 16, 2, 4, causal=True)
    for pe in (0, 1):
        cmds = r.program.pe_commands(pe)
        kinds = ["QK" if kk == 16 else "PV" for kk in cmds["k"][cmds["unit"] == int(Unit.GEMM)]]
        assert len(kinds) == 4 * 28
        for g in range(4):
            group = kinds[28 * g:28 * (g + 1)]
            assert group.count("QK") == 14 and group[-2:] == ["PV", "PV"], (pe, g, group)
    # one tiling per PE: groups 2 and 3 replayed from group 1
    tiles = r.program.compact.tiles
    assert [t[3] for t in tiles] == [2, 2]


def test_causal_phases_on_one_diagonal_block_replay_with_their_shapes_moving(monkeypatch):
    """Causal: the phases whose query blocks lie in one K/V block (a run) differ only in the
    keys of their diagonal folds, one query block more a phase, so each run is a tl.range with
    shapes_move: the launch is full tracing's, and only a run's first iterations (those the
    proof reads) and its last run the kernel's Python (the last: its diagonal and masked folds
    hold as much work as a whole block, so the softmax before them comes one fold sooner)."""
    import kernbench.kernels._prefill as prefill

    calls = []
    load_q = prefill._load_q
    monkeypatch.setattr(prefill, "_load_q", lambda *a: calls.append(a[3]) or load_q(*a))
    # n = 2 ranks, S = 64 rows each: chunks of c = 32 rows; block_q 4, block_kv 32: one K/V
    # block a chunk, so one run of 32 / 4 = 8 phases per K/V group; h_kv = 2 groups (too few
    # for the group loop to replay: both traced). G = 32, d = 64: a query block's o is
    # (4 * 32, 64), more elements than a fill whose value tracing keeps (KNOWN_FILL_MAX), which
    # the next phase's o updates could not read across a replay. A run's iteration 0 differs
    # (its diagonal fold has 1 key), so iteration 1 reads what no later iteration reads of its
    # predecessor and the proof takes A = 2, B = 3 (loops.PROBES + 1); traced: phases 0-3 and
    # 7 of each run. 2 ranks x 2 groups x 5 phases x 2 query blocks = 40 query loads, against
    # 2 x 2 x 8 x 2 = 64 in full.
    runs = {}
    for replay in ("off", "on"):
        calls.clear()
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
        ctx.install_sfr("pe")
        qp, kp, vp = (ctx.shard(np.zeros((2, 64, h, 64), np.float16), axis=0, over="pe", parts=2)
                      for h in (64, 2, 2))
        o = ctx.empty((64, 64, 64), "f16")
        runs[replay] = ctx.launch(attention_mesh_kv_kernel, (2, 1), qp, kp, vp, o, 64, 64, 64, 2, 64, 2,
                                  0, 4, 32, causal=True, mode="timing", replay=replay, record_events=True)
        assert len(calls) == (64 if replay == "off" else 40)
    a, b = runs["off"], runs["on"]
    assert a.cycles == b.cycles and np.array_equal(a.peak_sram, b.peak_sram)
    assert a.events.tobytes() == b.events.tobytes()
    assert a.unit_counters.tobytes() == b.unit_counters.tobytes()
    assert a.program.commands.tobytes() == b.program.commands.tobytes()
    assert [a.label(i) for i in range(a.program.n_commands)] == \
        [b.label(i) for i in range(b.program.n_commands)]


@pytest.mark.parametrize("n, S, bq, bkv", [(2, 64, 4, 32), (3, 128, 4, 32), (4, 96, 8, 48),
                                           (2, 160, 4, 80), (5, 64, 2, 16)])
def test_causal_runs_keep_the_contract(n, S, bq, bkv):
    """Verify mode traces each launch with replay and in full and checks every phase a run
    replayed (its commands, tensors and addresses): the kernel's runs keep shapes_move's
    contract whatever the ranks and blocks (one K/V block a chunk or several; G = 32, d = 64:
    the o tiles are past KNOWN_FILL_MAX, so runs replay)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": max(n, 2)})
    ctx.install_sfr("pe")
    qp, kp, vp = (ctx.shard(np.zeros((n, S, h, 64), np.float16), axis=0, over="pe", parts=n)
                  for h in (64, 2, 2))
    o = ctx.empty((S, 64, 64), "f16")
    traced = ctx.trace(attention_mesh_kv_kernel, (n, 1), qp, kp, vp, o, S, S, 64, 2, 64, n, 0, bq, bkv,
                       causal=True, replay="verify")
    assert traced.replayed_rows > 0


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_causal_zigzag_balances_the_ranks(n):
    _, r, _, _ = _launch(n, 64, 2, 1, 32, 8, 16, causal=True)
    busy = r.unit_counters["busy"][:n, int(Unit.GEMM)]
    assert busy.min() == busy.max(), busy


@pytest.mark.parametrize("n, S, bq, bkv", [(2, 16, 4, 8), (3, 10, 4, 2), (4, 8, 2, 4),
                                           # 1-row query blocks: the diagonal fold of a row
                                           # sees its own block's keys up to itself, none masked
                                           (1, 4, 1, 2), (2, 8, 1, 4), (3, 6, 1, 2048),
                                           # runs of 8 phases on a diagonal block (shapes_move)
                                           (2, 64, 4, 32), (3, 32, 2, 16)])
def test_causal_equals_the_reference(n, S, bq, bkv):
    _, _, out, ref = _launch(n, S, 4, 2, 16, bq, bkv, causal=True, mode="functional")
    ok, err, _ = check_output(out, ref)
    assert ok, err


@pytest.mark.parametrize("n, S_q, S_kv, h_q, h_kv, d, bq, bkv, causal", [
    (6, 100, 16, 4, 1, 64, 32, 32, False),  # a 4-row query block after 32-row ones
    (8, 66, 66, 6, 3, 32, 32, 16, True),  # ragged query and K/V blocks (33-row chunks), causal
    (5, 40, 37, 2, 1, 16, 16, 8, False),  # a 5-key K/V block after 8-key ones
])
def test_ragged_blocks_are_replayed_exactly(n, S_q, S_kv, h_q, h_kv, d, bq, bkv, causal):
    """A step loop whose folds are smaller than the folds before it (a ragged block after full
    ones): tl.range replay equals full tracing (verify mode traces both and compares), and
    timing mode's cycles are functional mode's. Before, the pipeline held a full fold's softmax
    back for several of the small folds' steps, so the steps tl.range compared were not those
    it replayed: timing mode was up to 3% off and verify refused the kernel."""
    def launch(**kw):
        ctx = kernbench.Context("mesh8")
        ctx.install_sfr("pe")
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal(shape).astype(np.float16)
                   for shape in ((n * S_q, h_q, d), (n * S_kv, h_kv, d), (n * S_kv, h_kv, d)))
        split = zigzag_split if causal else (lambda x, n: x.reshape((n, -1) + x.shape[1:]))
        qp, kp, vp = (ctx.shard(split(x, n), axis=0, over="pe", parts=n) for x in (q, k, v))
        o = ctx.empty((S_q, h_q, d), "f16")
        return ctx.launch(attention_mesh_kv_kernel, (n, 1), qp, kp, vp, o, S_q, S_kv, h_q, h_kv, d,
                          n, 0, bq, bkv, causal=causal, **kw)

    functional = launch(mode="functional")
    verified = launch(mode="timing", replay="verify")
    replayed = launch(mode="timing")
    assert verified.cycles == replayed.cycles == functional.cycles
    assert np.array_equal(replayed.unit_counters, functional.unit_counters)


@pytest.mark.parametrize("n, causal", [(13, False), (13, True), (16, True)])
def test_a_long_line_equals_the_reference(n, causal):
    """Ranks far from both ends of the line: each phase's steps come from both sides up to
    step min(r, n - 1 - r), from one side after (two tl.range loops, a query block's o stored
    after its last fold, worked out before the steps). Functional mode runs every step."""
    _, _, out, ref = _launch(n, 8, 2, 1, 16, 2, 4, causal=causal, mode="functional")
    ok, err, _ = check_output(out, ref)
    assert ok, err


@pytest.mark.parametrize("causal", [False, True])
def test_the_steps_of_a_long_line_are_replayed_exactly(causal):
    """16 ranks (the cubes of mesh64, 4K): verify mode traces every PE in full as well, checks
    every replayed iteration and compares the programs; the launch is full tracing's. Without
    the steps replayed each rank would trace 16 of its 64 (K/V group, query block) phases in
    full (iterations 0, 1, 2 and the last of both loops): a quarter of the commands."""
    hw = load_hw("mesh64")
    spec = panel_spec("multi_user_prefill", hw, shape="llama70b", context=4096, cubes=16, causal=causal)
    r = run_panel(spec, hw, replay="verify")
    assert r.passed
    program = r.result.program
    traced = int(np.diff(program.compact.bounds, axis=1).sum())
    if not causal:  # (causal phases differ in their diagonal folds: more of them are traced)
        assert traced < program.n_commands // 4


def test_causal_is_a_keyword_after_the_block_sizes():
    import inspect

    params = inspect.signature(attention_mesh_kv_kernel).parameters
    names = list(params)
    assert names.index("causal") > names.index("block_kv")
    assert params["causal"].kind is inspect.Parameter.KEYWORD_ONLY and params["causal"].default is False


@pytest.mark.parametrize("kw, S_q, S_kv, match", [
    ({"causal": "yes"}, 8, 8, r"causal must be True or False, got 'yes'"),
    ({"causal": True}, 8, 6, r"causal \(zigzag layout\) needs S_q == S_kv_per_rank"),
    ({"causal": True}, 7, 7, r"and even"),
])
def test_causal_arguments_are_checked_before_any_command(kw, S_q, S_kv, match):
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx.install_sfr("pe")
    q = ctx.empty((S_q, 2, 8), "f16")
    kv = ctx.empty((S_kv, 1, 8), "f16")
    with pytest.raises(KernelError, match=match):
        ctx.launch(attention_mesh_kv_kernel, (2, 1), q, kv, kv, q, S_q, S_kv, 2, 1, 8, 2,
                   mode="timing", **kw)


@pytest.mark.parametrize("flag", [True, False])
def test_causal_takes_a_numpy_bool_as_its_value(flag):
    """A sweep's axis of np.array([True, False]) gives numpy bools: the kernel reads one as
    the bool it is (it was refused; tl.range's replay_first, which it passes causal to, too)."""
    def run(causal):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
        ctx.install_sfr("pe")
        q = ctx.empty((8, 2, 8), "f16")
        kv = ctx.empty((8, 1, 8), "f16")
        return ctx.launch(attention_mesh_kv_kernel, (2, 1), q, kv, kv, q, 8, 8, 2, 1, 8, 2,
                          block_q=2, block_kv=2, mode="timing", causal=causal)

    a, b = run(flag), run(np.bool_(flag))
    assert a.cycles == b.cycles
    assert a.program.commands.tobytes() == b.program.commands.tobytes()


def test_zigzag_helpers():
    pos = zigzag_positions(16, 2)
    assert pos.tolist() == [[0, 1, 2, 3, 12, 13, 14, 15], [4, 5, 6, 7, 8, 9, 10, 11]]
    x = np.arange(16 * 3).reshape(16, 3)
    parts = zigzag_split(x, 2)
    assert parts.shape == (2, 8, 3) and (parts[1, 0] == x[4]).all()
    assert (zigzag_merge(parts) == x).all()
    with pytest.raises(ValueError, match="not a multiple of 2 \\* n_ranks = 6"):
        zigzag_positions(16, 3)


def test_causal_panel_counts_half_the_flops():
    hw = load_hw("default")
    full = panel_spec("single_user_prefill", hw, shape="llama70b", context=4096)
    causal = panel_spec("single_user_prefill", hw, shape="llama70b", context=4096, causal=True)
    assert causal.model_flops() * 2 == full.model_flops()
    # decode panels ignore causal: one query row, the newest token, sees everything
    assert not panel_spec("single_user_decode", hw, causal=True).causal
