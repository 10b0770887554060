"""An error in a function the kernel called names the calls that led there (a new user's review:
a helper called from several places named only the helper's line). The chain runs from the
error's line out to the kernel's, innermost first; `.where` stays the innermost line; a caller
repeated in a row (recursion) is named once with its count; comprehension frames, on their
function's line, are that function's."""
import os

import pytest

import kernbench
from kernbench import KernelError
from kernbench.language.semantic import called_from

FILE = os.path.basename(__file__)


def line_of(marker: str) -> int:
    """The line of this file that ends with ``marker``."""
    return next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith(marker))


def at(marker: str) -> str:
    return f"{FILE}:{line_of(marker)}"


@pytest.fixture
def ctx():
    return kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})


def launch_error(ctx, kernel, *args, **kw) -> KernelError:
    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), *args, **kw)
    return ei.value


def scores(tl, q):
    return tl.dot(q, q)  # (scores: the bad dot)


def fold(tl, q):
    return scores(tl, q) * 2.0  # (fold calls scores)


def test_a_tl_error_in_a_helper_names_each_call_out_to_the_kernel(ctx):
    x = ctx.empty((64, 32), "f16")

    def kernel(p, *, tl):
        q = tl.load(p, shape=(64, 32), dtype="f16")
        fold(tl, q)  # (kernel calls fold)

    e = launch_error(ctx, kernel, x)
    assert str(e) == (f"PE (0, 0) at {at('# (scores: the bad dot)')} (in scores, called from fold at "
                      f"{at('# (fold calls scores)')}, from kernel at {at('# (kernel calls fold)')}): "
                      f"dot shape mismatch: (64,32) x (64,32); expected b.shape[0] == a.shape[1] = 32, "
                      f"got 64")
    assert e.where.endswith(at("# (scores: the bad dot)")) and e.pe == (0, 0)


def test_an_error_in_the_kernel_itself_names_no_calls(ctx):
    # (the test function that launched the kernel is the user's too, but not a call of the kernel)
    x = ctx.empty((64, 32), "f16")

    def kernel(p, *, tl):
        q = tl.load(p, shape=(64, 32), dtype="f16")
        tl.dot(q, q)  # (the kernel's own bad dot)

    assert str(launch_error(ctx, kernel, x)).startswith(
        f"PE (0, 0) at {at('# (the kernel' + chr(39) + 's own bad dot)')}: dot shape mismatch")


def lookup(table, k):
    return table[k]  # (lookup raises)


def test_a_python_exception_in_a_helper_names_the_calls(ctx):
    def kernel(*, tl):
        lookup({}, "key")  # (kernel calls lookup)

    e = launch_error(ctx, kernel)
    assert str(e) == (f"kernel kernel raised KeyError on PE (0, 0) (program_id(0)=0, program_id(1)=0) "
                      f"at {at('# (lookup raises)')} (in lookup, called from kernel at "
                      f"{at('# (kernel calls lookup)')}): 'key'")
    assert isinstance(e.__cause__, KeyError)


def descend(tl, x, k):
    if k == 0:
        return tl.sum(x, axis=5)  # (descend: the bad axis)
    return descend(tl, x, k - 1)  # (descend recurses)


def test_recursion_names_the_repeated_caller_once_with_its_count(ctx):
    def kernel(*, tl):
        x = tl.zeros((4, 4), "f32")
        descend(tl, x, 9)  # (kernel calls descend)

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at('# (descend: the bad axis)')} (in descend, called from "
                          f"descend at {at('# (descend recurses)')} (9 times), from kernel at "
                          f"{at('# (kernel calls descend)')}): "), msg


def ping(tl, x, k):
    return pong(tl, x, k - 1) if k else tl.sum(x, axis=5)  # (ping)


def pong(tl, x, k):
    return ping(tl, x, k - 1)  # (pong)


def test_a_long_chain_keeps_its_innermost_callers_and_the_kernel(ctx):
    def kernel(*, tl):
        ping(tl, tl.zeros((4, 4), "f32"), 20)  # (kernel calls ping)

    msg = str(launch_error(ctx, kernel))
    head = msg.split("): ", 1)[0]
    # 20 callers alternating pong and ping, then the kernel: 5 named, 15 counted, the kernel
    names = [f"pong at {at('# (pong)')}", f"ping at {at('# (ping)')}"]
    assert head == (f"PE (0, 0) at {at('# (ping)')} (in ping, called from "
                    + ", from ".join(names[i % 2] for i in range(5))
                    + f", from 15 more calls, from kernel at {at('# (kernel calls ping)')}"), head


def test_a_generator_the_kernel_iterates_is_named_at_the_line_that_resumed_it(ctx):
    def blocks(tl):
        for k in range(3):
            yield tl.zeros((4, 4), "f32") if k < 2 else tl.zeros((4, 4), "f64")  # (blocks)

    def kernel(*, tl):
        for _ in blocks(tl):  # (kernel iterates blocks)
            pass

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at('# (blocks)')} (in blocks, called from kernel at "
                          f"{at('# (kernel iterates blocks)')}): unknown dtype 'f64'"), msg


def test_comprehensions_are_their_functions_line(ctx):
    def kernel(*, tl):
        xs = [tl.zeros((4, 4), "f32") for _ in range(2)]
        [tl.sum(x, axis=5) for x in xs]  # (a comprehension in the kernel)

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at('# (a comprehension in the kernel)')}: "), msg

    def kernel2(*, tl):
        x = tl.zeros((4, 4), "f32")
        [descend(tl, x, 0) for _ in range(2)]  # (a comprehension calls descend)

    msg = str(launch_error(ctx, kernel2))
    assert msg.startswith(f"PE (0, 0) at {at('# (descend: the bad axis)')} (in descend, called from "
                          f"kernel2 at {at('# (a comprehension calls descend)')}): "), msg


def load_block(tl, p, i):
    return tl.load(p + i * 128, shape=(64,), dtype="f16")  # (load_block)


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_the_chain_is_the_same_with_and_without_tl_range_replay(ctx, mode):
    # iteration 99's load runs past the array: replay traces it (it cannot replay a load it
    # cannot prove in bounds), so every replay mode names the same calls
    x = ctx.empty((100 * 64 - 32,), "f16")

    def kernel(p, *, tl):
        for i in tl.range(100):
            tl.exp(load_block(tl, p, i))  # (kernel calls load_block)

    msgs = {replay: str(launch_error(ctx, kernel, x, replay=replay, mode=mode))
            for replay in ("on", "off", "verify")}
    assert len(set(msgs.values())) == 1, msgs
    assert msgs["on"].startswith(f"PE (0, 0) at {at('# (load_block)')} (in load_block, called from "
                                 f"kernel at {at('# (kernel calls load_block)')}): load of (64,) f16 "
                                 f"at byte offset 12672 runs outside allocation"), msgs["on"]


def long_loop(tl):
    for _ in tl.range(2 ** 22):  # (long_loop's tl.range)
        tl.zeros((4,), "f32")


def test_a_tl_range_error_at_its_loop_line_names_the_calls(ctx, monkeypatch):
    # replaying 2**22 iterations would take more than the host's memory (made 2 MiB here): refused
    # at the loop's line before replay (tests/test_tl_hostile.py), inside the function the kernel
    # called
    from kernbench.language import builder
    monkeypatch.setattr(builder, "host_memory", lambda: 2 << 20)

    def kernel(*, tl):
        long_loop(tl)  # (kernel calls long_loop)

    msg = str(launch_error(ctx, kernel, replay="on", mode="timing"))
    assert msg.startswith(f"PE (0, 0) at {at('# (long_loop' + chr(39) + 's tl.range)')} (in long_loop, "
                          f"called from kernel at {at('# (kernel calls long_loop)')}): tl.range: "
                          f"replaying "), msg


def test_called_from_formats_what_it_is_given():
    assert called_from([]) == "" and called_from([("k.py", 3, "kernel")]) == ""
    assert called_from([("/a/h.py", 3, "h"), ("/a/k.py", 9, "kernel")]) == " (in h, called from kernel at k.py:9)"
    # a comprehension's frame on its caller's line is dropped; a genexpr resumed elsewhere is kept
    assert called_from([("k.py", 4, "<listcomp>"), ("k.py", 4, "kernel")]) == ""
    assert called_from([("k.py", 4, "<genexpr>"), ("k.py", 6, "kernel")]) == \
        " (in <genexpr>, called from kernel at k.py:6)"
    assert called_from([("h.py", 1, "h")] + [("h.py", 2, "h")] * 3 + [("k.py", 5, "k")]) == \
        " (in h, called from h at h.py:2 (3 times), from k at k.py:5)"


# -- a review's cases ---------------------------------------------------------------------------
import contextlib  # noqa: E402


@contextlib.contextmanager
def tile(tl):
    yield tl.sum(tl.zeros((4, 4), "f32"), axis=5)  # (tile's bad axis)


def test_library_frames_between_are_skipped_not_the_end_of_the_chain(ctx):
    # (contextlib's frames sit between the helper and the kernel: the chain stopped there)
    def kernel(*, tl):
        with tile(tl):  # (kernel enters tile)
            pass

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at('# (tile' + chr(39) + 's bad axis)')} (in tile, called "
                          f"from kernel at {at('# (kernel enters tile)')}): "), msg


def test_a_kernel_file_among_the_libraries_is_the_users(ctx, tmp_path):
    # a kernel (and its helper) in a file under site-packages: the kernel's own file counts as the
    # user's, for a tl error as for a Python exception
    import sysconfig
    fake = os.path.join(sysconfig.get_paths()["purelib"], "kb_user_kernels_probe.py")
    src = ("def helper(tl):\n    return tl.sum(tl.zeros((4, 4), 'f32'), axis=5)\n"
           "def pyhelper():\n    return {}['k']\n"
           "def kernel(bad_python, *, tl):\n    return pyhelper() if bad_python else helper(tl)\n")
    ns: dict = {}
    exec(compile(src, fake, "exec"), ns)
    base = os.path.basename(fake)
    assert str(launch_error(ctx, ns["kernel"], False)).startswith(
        f"PE (0, 0) at {base}:2 (in helper, called from kernel at {base}:6): ")
    assert f"at {base}:4 (in pyhelper, called from kernel at {base}:6): 'k'" in str(
        launch_error(ctx, ns["kernel"], True))


def bad_sum(tl):
    return tl.sum(tl.zeros((4, 4), "f32"), axis=5)  # (bad_sum's axis)


def test_a_librarys_wrapper_the_launch_called_is_not_named_as_a_caller(ctx):
    # a kernel behind functools.singledispatch: the wrapper (functools.py) is the frame the launch
    # called, and was named as the kernel's caller ("from wrapper at functools.py:909"); the
    # chain stops at the kernel's own frame, for a kernel in a file under site-packages too
    import functools
    import sysconfig

    @functools.singledispatch
    def direct(x, *, tl):  # (singledispatch's wrapper takes one positional argument at least)
        tl.sum(tl.zeros((4, 4), "f32"), axis=5)  # (direct's bad axis)

    @functools.singledispatch
    def kernel(x, *, tl):
        bad_sum(tl)  # (the dispatched kernel calls bad_sum)

    x = ctx.empty((4,), "f32")
    for mode in ("functional", "timing"):
        assert str(launch_error(ctx, direct, x, mode=mode)).startswith(
            f"PE (0, 0) at {at('# (direct' + chr(39) + 's bad axis)')}: "), mode
        assert str(launch_error(ctx, kernel, x, mode=mode)).startswith(
            f"PE (0, 0) at {at('# (bad_sum' + chr(39) + 's axis)')} (in bad_sum, called from kernel at "
            f"{at('# (the dispatched kernel calls bad_sum)')}): "), mode
    fake = os.path.join(sysconfig.get_paths()["purelib"], "kb_user_dispatched_probe.py")
    ns: dict = {}
    exec(compile("import functools\n@functools.singledispatch\ndef kernel(x, *, tl):\n"
                 "    return helper(tl)\n"
                 "def helper(tl):\n    return tl.sum(tl.zeros((4, 4), 'f32'), axis=5)\n", fake, "exec"), ns)
    base = os.path.basename(fake)
    assert str(launch_error(ctx, ns["kernel"], x)).startswith(
        f"PE (0, 0) at {base}:6 (in helper, called from kernel at {base}:4): ")


def parse(d):
    return d["block"]  # (parse raises)


def report(errs):
    raise errs[0]  # (report raises again)


def test_an_exception_raised_again_names_the_calls_that_raised_it(ctx):
    # (the traceback of `raise errs[0]` holds the first raise's entries behind the second's: it
    # read "called from kernel at <first call>, from report at ..., from kernel at ...")
    def kernel(*, tl):
        errs = []
        try:
            parse({})  # (kernel calls parse)
        except KeyError as e:
            errs.append(e)
        report(errs)

    msg = str(launch_error(ctx, kernel))
    assert f"at {at('# (parse raises)')} (in parse, called from kernel at {at('# (kernel calls parse)')}): " \
           f"'block'" in msg, msg


def test_a_relative_file_with_the_working_folder_gone_is_still_a_kernel_error(ctx, tmp_path):
    src = "def helper(tl):\n    return tl.sum(tl.zeros((4, 4), 'f32'), axis=5)\n" \
          "def kernel(*, tl):\n    helper(tl)\n"
    ns: dict = {}
    exec(compile(src, "<kernel-text>", "exec"), ns)
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        msg = str(launch_error(ctx, ns["kernel"]))
    finally:
        os.chdir(here)
    assert msg.startswith("PE (0, 0) at <kernel-text>:2 (in helper, called from kernel at <kernel-text>:4): ")


def test_two_lambdas_on_one_line_are_two_callers_and_a_comprehension_is_its_function(ctx):
    def kernel(*, tl):
        (lambda: (lambda: descend(tl, tl.zeros((4, 4), "f32"), 0))())()  # (two lambdas)

    msg = str(launch_error(ctx, kernel))
    two = at("# (two lambdas)")
    assert f"(in descend, called from <lambda> at {two}, from <lambda> at {two}, from kernel at {two}): " in msg

    def kernel2(*, tl):
        xs = [tl.zeros((4, 4), "f32")]
        return [x
                + tl.sum(x, axis=5)  # (a comprehension's second line)
                for x in xs]

    msg = str(launch_error(ctx, kernel2))
    assert msg.startswith(f"PE (0, 0) at {at(chr(35) + ' (a comprehension' + chr(39) + 's second line)')}: "), msg


def test_a_cap_never_hides_a_single_call():
    frames = [("k.py", i, f"f{i}") for i in range(8)]  # the error's line and 7 callers
    assert "more calls" not in called_from(frames)
    assert "from 2 more calls, from f8 at k.py:8)" in called_from(frames + [("k.py", 8, "f8")])


def test_a_generator_expression_the_kernel_runs_on_its_line_is_the_kernels(ctx):
    # (a second review's case: tuple(... for x in xs) in the kernel read "(in <genexpr>, called
    # from kernel at the same line)")
    def kernel(*, tl):
        xs = [tl.zeros((4, 4), "f32")]
        tuple(tl.sum(x, axis=5) for x in xs)  # (a genexpr the kernel runs)

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at('# (a genexpr the kernel runs)')}: sum: "), msg


try:
    {}["made before the launch"]
except KeyError as e:
    SAVED = e


def test_an_exception_made_before_the_launch_and_raised_in_the_kernel_names_the_kernel(ctx):
    # (its traceback goes on into this module's top level, which did not call the kernel)
    def kernel(*, tl):
        raise SAVED  # (kernel raises the saved one)

    msg = str(launch_error(ctx, kernel))
    assert msg.endswith(f"at {at('# (kernel raises the saved one)')}: 'made before the launch'"), msg


def caught(d):
    try:
        return d["inner"]
    except KeyError as e:
        return e  # (returned, not raised: the kernel raises it)


def test_an_exception_a_helper_returned_is_named_where_the_kernel_raises_it(ctx):
    def kernel(*, tl):
        e = caught({})
        raise e  # (kernel raises what caught returned)

    msg = str(launch_error(ctx, kernel))
    assert msg.endswith(f"at {at('# (kernel raises what caught returned)')}: 'inner'"), msg


def work(x):
    raise ValueError(f"worker {x}")  # (work raises)


def test_an_exception_a_worker_thread_raised_names_the_worker(ctx):
    # (a third review's case: the library's `raise self._exception` in Future.result cut the
    # chain there, naming the .result() line)
    import concurrent.futures as cf

    def kernel(*, tl):
        with cf.ThreadPoolExecutor(1) as ex:
            ex.submit(work, 1).result()  # (kernel waits for work)

    msg = str(launch_error(ctx, kernel))
    assert f"at {at('# (work raises)')} (in work, called from kernel at {at('# (kernel waits for work)')}): " \
           f"worker 1" in msg, msg


class Oops(Exception):
    def __init__(self):
        super().__init__(f"limit {NO_SUCH_NAME}")  # noqa: F821  (Oops.__init__ fails)


def check(x):
    if x > 3:
        raise Oops  # (check raises the class)


def test_an_exception_class_whose_init_fails_names_the_init(ctx):
    def kernel(*, tl):
        check(5)  # (kernel calls check)

    msg = str(launch_error(ctx, kernel))
    assert "raised NameError" in msg and f"at {at('(Oops.__init__ fails)')} (in __init__, called from " \
           f"check at {at('# (check raises the class)')}, from kernel at {at('# (kernel calls check)')})" in msg, msg


def test_a_multi_line_generator_expression_the_kernel_runs_is_the_kernels(ctx):
    def kernel(*, tl):
        xs = [tl.zeros((4, 4), "f32")]
        tuple(
            tl.sum(x, axis=5)  # (a multi-line genexpr's body)
            for x in xs)

    msg = str(launch_error(ctx, kernel))
    assert msg.startswith(f"PE (0, 0) at {at(chr(35) + ' (a multi-line genexpr' + chr(39) + 's body)')}: "), msg


def test_code_compiled_with_no_file_name_is_named_unnamed_at_its_line(ctx):
    # (a review: ``compile(src, "", "exec")`` printed "at :2"; every message names a source
    # line through common.errors.file_line)
    src = "def helper(tl):\n    return tl.sum(tl.zeros((4, 4), 'f32'), axis=5)\n" \
          "def kernel(*, tl):\n    helper(tl)\n"
    ns: dict = {}
    exec(compile(src, "", "exec"), ns)
    err = launch_error(ctx, ns["kernel"])
    assert str(err).startswith("PE (0, 0) at <unnamed>:2 (in helper, called from kernel at <unnamed>:4): "), str(err)
    assert err.where == "<unnamed>:2"
    src = "def kernel(*, tl):\n    raise ValueError('no block')\n"
    exec(compile(src, "", "exec"), ns)
    msg = str(launch_error(ctx, ns["kernel"]))
    assert "raised ValueError on PE (0, 0) (program_id(0)=0, program_id(1)=0) at <unnamed>:2: no block" in msg, msg
