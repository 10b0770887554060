"""The ring structure of the attention kernels, read from the engine's counters.

- rank_axis 1: the 7 silent PEs of each cube show zero on every unit; only cube-level links carry
  bytes.
- every chunk is received exactly once per rank (RX command counts per port);
- the bidirectional line takes n_ranks - 1 steps, and GEMM work grows with the chunks folded.
Expected counts are derived by hand beside each assertion.
"""
import numpy as np
import pytest

from attention_helpers import small_spec, with_mode
from kernbench.common.pe_commands import N_PORTS, Port, Unit
from kernbench.diag import run_panel
from kernbench.hw import load_hw

MESH8 = load_hw("mesh8")
PPC = MESH8.pes_per_cube


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_rank_axis_1_silent_pes_and_cube_links(kind):
    n = 4
    r = run_panel(small_spec(kind, n, 4, 1), MESH8).result
    uc = r.unit_counters
    working = [c * PPC for c in range(n)]  # PE 0 of each cube
    assert list(r.working_pes) == working
    for g in range(MESH8.n_pes):
        if g not in working:
            for field in ("busy", "commands", "work", "stall_operand"):
                assert uc[field][g].sum() == 0, (g, field)
    lc = r.link_counters
    carrying = {int(i) // N_PORTS for i in np.flatnonzero(lc["bytes"])}
    # links run PE 0 of cube c <-> PE 0 of cube c +- 1: E from cubes 0..n-2, W from cubes 1..n-1
    assert carrying == set(working)
    for c in range(n):
        g = c * PPC
        assert (lc["bytes"][g * N_PORTS + Port.E] > 0) == (c < n - 1)
        assert (lc["bytes"][g * N_PORTS + Port.W] > 0) == (c > 0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_prefill_every_chunk_received_once_per_phase(n):
    """Once in each phase (K/V group, query block), not once per launch: docs/kernels.md, "K/V
    travel once per phase" (a peer review read issue 4's "exactly once per rank" as per launch)."""
    spec = small_spec("prefill", n, 4, 0)  # 8 rows per rank, blocks of 4: 2 query, 2 K/V blocks
    r = run_panel(spec, MESH8).result
    uc = r.unit_counters
    # Per (group, query block) pass, a chunk arrives as 2 K/V blocks x (K, V) = 4 recvs.
    # passes = h_kv (2) x query blocks (8 / 4 = 2) = 4  ->  16 recvs per chunk received.
    per_chunk = 2 * 2 * 2 * 2
    chunk_bytes = 8 * 16 * 2 * 2 * 4  # (8 rows x d 16 x f16) for K and V, over the 4 passes
    for i in range(n):
        # rank i gets the chunks of ranks 0..i-1 from W and of i+1..n-1 from E: n - 1 in all
        assert uc["commands"][i, Unit.RX_W] == i * per_chunk
        assert uc["commands"][i, Unit.RX_E] == (n - 1 - i) * per_chunk
        assert uc["work"][i, Unit.RX_W] + uc["work"][i, Unit.RX_E] == (n - 1) * chunk_bytes
        # it passes on every chunk that still has ranks ahead: from W to E unless it is the east
        # end, from E to W unless it is the west end; plus its own chunk both ways
        sent_e = (i + 1 if i < n - 1 else 0) * per_chunk
        sent_w = (n - i if i > 0 else 0) * per_chunk
        assert uc["commands"][i, Unit.TX_E] == sent_e
        assert uc["commands"][i, Unit.TX_W] == sent_w


# decode's message counts per rank: tests/test_attention_decode.py::test_every_partial_and_output_received_once


def test_prefill_gemm_work_grows_with_ranks():
    """GEMM busy per rank, by hand (docs/hardware-model.md, R = C = 32):
    per (group, query block, K/V block): rows = 4 query rows x G 4 = 16, d = 16, block = 4 keys
      s = q k^T : (16, 16) x (16, 4): folds 1 x 1, fold = 16 + 62 = 78 cycles
      p v      : (16, 4) x (4, 16):  folds 1 x 1, fold = 4 + 62 = 66 cycles
    a rank folds n chunks x 2 K/V blocks x 2 query blocks x 2 groups = 8n block pairs:
      GEMM busy = 8n x (78 + 66) = 1152 n cycles."""
    cycles = []
    for n in (1, 2, 4, 8):
        r = run_panel(with_mode(small_spec("prefill", n, 4, 0), "timing"), MESH8).result
        busy = r.unit_counters["busy"][:n, Unit.GEMM]
        assert list(busy) == [1152 * n] * n
        assert r.cycles >= 1152 * n
        cycles.append(r.cycles)
    assert cycles == sorted(cycles) and len(set(cycles)) == 4


def test_line_takes_n_minus_1_steps():
    """The last chunk a rank folds comes from the far end, n - 1 hops away: the west end's last
    recv is of the east end's chunk, and no recv anywhere is of a chunk more than n - 1 hops
    off. Step k's blocks are forwarded from a rank that itself received them at step k - 1, so
    the number of forwarding hops behind rank 0's last K block is n - 1."""
    n = 5
    r = run_panel(with_mode(small_spec("prefill", n, 4, 0), "timing"), MESH8).result
    msgs = r.engine.messages
    cmds = r.program.commands
    pe_of = np.repeat(np.arange(MESH8.n_pes), np.diff(r.program.cmd_offsets))
    # follow one K block from the east end (rank n-1, its first send W) hop by hop
    hops = 0
    send = min(int(m["send"]) for m in msgs if pe_of[int(m["send"])] == n - 1
               and cmds["port"][int(m["send"])] == Port.W)
    while True:
        m = msgs[msgs["send"] == send][0]
        recv = int(m["recv"])
        hops += 1
        g = int(pe_of[recv])
        fwd = [int(x["send"]) for x in msgs if pe_of[int(x["send"])] == g
               and cmds["src0"][int(x["send"])] == cmds["dst"][recv]]
        if not fwd:
            break
        send = fwd[0]
    assert g == 0 and hops == n - 1


@pytest.mark.parametrize("n", [3, 8])
def test_prefill_peak_sram_does_not_grow_with_the_chunk(n):
    """Blocks of 4 rows, chunks of 8, 32 and 128 rows per rank: peak SRAM per PE is the same.
    In block-major order a forwarded block is folded by the neighbour in the next slot; folding
    chunk by chunk would park a whole chunk per direction behind credit-stalled sends (with this
    spec that schedule peaks at 4224 bytes for 8-row chunks and 12160 for 128-row ones)."""
    peaks = set()
    for rows in (8, 32, 128):
        r = run_panel(with_mode(small_spec("prefill", n, 4, 0, rows=rows), "timing"), MESH8).result
        peaks.add(int(r.peak_sram.max()))
    assert len(peaks) == 1
