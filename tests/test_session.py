"""The behaviour suite over ``local:``, in the spirit of Pushy's own tests."""

from __future__ import annotations

import gc
import os
import sys
import time
import warnings

import anyio
import pytest

import aiopushy as pushy

pytestmark = pytest.mark.anyio


async def test_connect_gives_a_distinct_interpreter(conn: pushy.Session) -> None:
    pid = await conn.modules.os.getpid()
    assert pid != os.getpid()
    assert pid == conn.info["pid"]
    assert conn.transport.address == ""
    assert not conn.closed


async def test_connect_without_context_manager(remote_python: str) -> None:
    conn = await pushy.connect("local:", python=remote_python)
    try:
        assert await conn.eval("6 * 7") == 42
    finally:
        await conn.close()
    assert conn.closed
    await conn.close()  # twice is fine
    with pytest.raises(pushy.ConnectionLost):
        await conn.eval("1")


async def test_eval(conn: pushy.Session) -> None:
    assert await conn.eval("1 + 2") == 3
    with pytest.raises(ZeroDivisionError):
        await conn.eval("1 / 0")
    assert await conn.eval("1 + 2") == 3  # still usable


async def test_execute_uses_a_persistent_namespace(conn: pushy.Session) -> None:
    await conn.execute("x = 1")
    await conn.execute("x += 1")
    assert await conn.eval("x") == 2


async def test_execute_with_local_dicts(conn: pushy.Session) -> None:
    scope: dict[str, object] = {}
    await conn.execute("x = 123", locals=scope)
    assert scope == {"x": 123}
    scope = {"a": 2}
    await conn.execute("b = a * 2\ndel a\nimport os\nc = os", globals=scope)
    assert scope["b"] == 4
    assert "a" not in scope and "__builtins__" not in scope
    assert isinstance(scope["c"], pushy.Proxy)
    assert await conn.eval("b + 1", globals=scope) == 5
    local_obj = object()
    both: dict[str, object] = {"o": local_obj}
    await conn.execute("p = o", globals=both, locals=both)
    assert both["p"] is local_obj


async def test_eval_with_remote_dict(conn: pushy.Session) -> None:
    remote_scope = await pushy.byref(conn.modules.builtins.dict(k=5))
    assert isinstance(remote_scope, pushy.Proxy)
    await conn.execute("k2 = k * 3", globals=remote_scope)
    assert await remote_scope["k2"] == 15


async def test_compile_function(conn: pushy.Session) -> None:
    def remote_pid_plus(a: int, b: int = 1) -> int:
        import os

        return os.getpid() + a + b

    function = await conn.compile(remote_pid_plus)
    pid = await conn.modules.os.getpid()
    assert await function(1) == pid + 2
    assert await function(1, 5) == pid + 6
    assert await function(a=2, b=3) == pid + 5


async def test_compile_lambda_and_modes(conn: pushy.Session) -> None:
    double = await conn.compile(lambda x: x * 2)
    assert await double(21) == 42
    code = await conn.compile("lambda a, b: a + b", "eval")
    add = await conn.eval(code)
    assert await add(1, 2) == 3
    statements = await conn.compile("z = 10\nz *= 2")
    await conn.execute(statements)
    assert await conn.eval("z") == 20
    with pytest.raises(ValueError):
        await conn.compile("1", "bogus")
    with pytest.raises(SyntaxError):
        await conn.compile("def (", "exec")


async def test_compile_rejects_closures(conn: pushy.Session) -> None:
    captured = 3

    def closure() -> int:
        return captured

    with pytest.raises(ValueError, match="captured"):
        await conn.compile(closure)
    with pytest.raises(TypeError):
        await conn.compile(len)


async def test_attribute_chain_and_auto_import(conn: pushy.Session) -> None:
    assert await conn.modules.os.sep == "/"
    assert await conn.modules.os.path.join("a", "b") == "a/b"
    assert await conn.modules.xml.dom.minidom.parseString("<a/>").documentElement.tagName == "a"
    assert await conn.modules["os.path"].basename("/x/y") == "y"
    module = await conn.remote_import("json")
    assert await module.dumps([1]) == "[1]"
    with pytest.raises(ModuleNotFoundError):
        await conn.modules.no_such_module_here.x
    with pytest.raises(AttributeError):
        await conn.modules.os.no_such_attribute


async def test_values_and_proxies(conn: pushy.Session) -> None:
    values = [
        None,
        True,
        7,
        2**100,
        1.5,
        2j,
        "s",
        b"b",
        bytearray(b"ba"),
        slice(1, 2),
        range(3),
        ...,
        (1, (2,)),
        [1, [2]],
        {"a": {1: 2}},
        {1, 2},
        frozenset({3}),
    ]
    echo = await conn.eval("lambda x: x")
    for value in values:
        back = await echo(value)
        assert back == value and type(back) is type(value)
    assert isinstance(await conn.eval("object()"), pushy.Proxy)
    assert isinstance(await conn.eval("__import__('collections').OrderedDict()"), pushy.Proxy)


async def test_identity_round_trip(conn: pushy.Session) -> None:
    echo = await conn.eval("lambda x: x")
    local = object()
    assert await echo(local) is local
    remote = await conn.eval("object()")
    assert await echo(remote) is remote
    same = await conn.eval("lambda x, y: x is y")
    assert await same(remote, remote) is True
    assert await same(local, local) is True


async def test_proxy_identity_semantics(conn: pushy.Session) -> None:
    remote = await conn.eval("object()")
    assert remote == remote
    assert remote != await conn.eval("object()")
    assert hash(remote) == hash(remote)
    assert {remote: 1}[remote] == 1
    with pytest.raises(TypeError, match="await"):
        bool(remote)
    with pytest.raises(TypeError, match="async for"):
        iter(remote)
    with pytest.raises(TypeError, match=r"operator\.setitem"):
        remote["k"] = 1
    with pytest.raises(TypeError, match=r"operator\.delitem"):
        del remote["k"]
    assert await remote == remote  # awaiting a proxy gives itself


async def test_str_and_repr(conn: pushy.Session) -> None:
    remote = await conn.eval("type('Thing', (), {'__repr__': lambda s: 'Thing!'})()")
    assert await conn.modules.builtins.repr(remote) == "Thing!"
    assert await conn.modules.builtins.str(remote) == "Thing!"
    assert "Thing" in repr(remote) and "local:" in repr(remote)
    assert "modules.os.getpid" in repr(conn.modules.os.getpid)


async def test_dict_proxy(conn: pushy.Session) -> None:
    d = await pushy.byref(conn.modules.builtins.dict())
    assert isinstance(d, pushy.Proxy)
    await conn.modules.operator.setitem(d, "a", 1)
    await d.update({"b": 2})
    other = await pushy.byref(conn.modules.builtins.dict(c=3))
    await d.update(other)
    assert await d["a"] == 1
    assert await conn.modules.builtins.len(d) == 3
    await conn.modules.operator.delitem(d, "a")
    assert await conn.modules.operator.contains(d, "a") is False
    with pytest.raises(TypeError, match=r"operator\.contains"):
        "a" in d  # noqa: B015
    assert await conn.modules.builtins.dict(d) == {"b": 2, "c": 3}
    assert await conn.modules.operator.eq(d, {"b": 2, "c": 3}) is True


async def test_list_proxy_sys_path(conn: pushy.Session) -> None:
    path = await pushy.byref(conn.modules.sys.path)
    before = await conn.modules.builtins.len(path)
    await path.append("/aiopushy-test")
    assert (await conn.modules.sys.path)[-1] == "/aiopushy-test"
    assert await path.pop() == "/aiopushy-test"
    assert await conn.modules.builtins.len(path) == before
    copy = await conn.modules.sys.path
    assert isinstance(copy, list)


async def test_operators(conn: pushy.Session) -> None:
    number = await pushy.byref(conn.modules.builtins.int(7))
    assert await (number + 1) == 8
    assert await (1 + number) == 8
    assert await (number * 2 - 4) == 10
    assert await (number // 2) == 3
    assert await (2**number) == 128
    assert await (-number) == -7
    assert await (number < 8) is True
    assert await (number >= 8) is False
    assert await conn.modules.operator.add(number, 3) == 10


async def test_remote_classes(conn: pushy.Session) -> None:
    await conn.execute(
        "class Counter:\n"
        "    def __init__(self, start):\n"
        "        self.value = start\n"
        "    def bump(self, by=1):\n"
        "        self.value += by\n"
        "        return self.value\n"
    )
    counter = await (await conn.eval("Counter"))(10)
    assert isinstance(counter, pushy.Proxy)
    assert await counter.bump() == 11
    assert await counter.bump(by=5) == 16
    assert await counter.value == 16
    assert await conn.modules.builtins.type(counter).__name__ == "Counter"


async def test_nested_lazy_arguments_are_one_request(conn: pushy.Session) -> None:
    count = await conn.modules.builtins.len(conn.modules.os.listdir("/"))
    assert count == len(os.listdir("/"))


async def test_never_awaited_call_warns(conn: pushy.Session) -> None:
    with pytest.warns(RuntimeWarning, match="never awaited"):
        conn.modules.os.getpid()
        gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chained = conn.modules.os.getcwd().upper
        del chained  # a call used inside a longer chain is not "never awaited"
        attribute = conn.modules.os.sep
        del attribute  # attribute chains are cheap to drop
        gc.collect()


async def test_async_for_batches(conn: pushy.Session) -> None:
    items = [x async for x in conn.modules.builtins.range(200)]
    assert items == list(range(200))
    generator = await conn.eval("(i * i for i in range(5))")
    assert [x async for x in generator] == [0, 1, 4, 9, 16]
    assert [x async for x in pushy.iterate(conn.modules.builtins.range(3), batch=1)] == [0, 1, 2]
    assert [x async for x in conn.modules.builtins.iter([])] == []
    with pytest.raises(ValueError):
        pushy.iterate(conn.modules.builtins.range(3), batch=0)


async def test_async_with_remote_context_manager(conn: pushy.Session, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "f.txt")
    async with conn.modules.builtins.open(path, "w") as f:
        await f.write("hello")
    with open(path) as local_file:
        assert local_file.read() == "hello"
    await conn.execute(
        "class CM:\n"
        "    seen = None\n"
        "    def __enter__(self):\n"
        "        return 'entered'\n"
        "    def __exit__(self, t, v, tb):\n"
        "        CM.seen = t\n"
        "        return True\n"
    )
    manager = await conn.eval("CM()")
    async with manager as value:
        assert value == "entered"
        raise KeyError("suppressed remotely")
    assert await conn.eval("CM.seen is KeyError")


async def test_remote_builtin_exception(conn: pushy.Session) -> None:
    with pytest.raises(KeyError) as info:
        await conn.eval("{}['missing']")
    assert "missing" in info.value.remote_traceback  # type: ignore[attr-defined]
    assert isinstance(info.value.__cause__, pushy.RemoteTraceback)
    with pytest.raises(FileNotFoundError):
        await conn.modules.builtins.open("/no/such/file")


async def test_remote_non_builtin_exception(conn: pushy.Session) -> None:
    with pytest.raises(pushy.RemoteError) as info:
        await conn.modules.subprocess.check_call(["false"])
    error = info.value
    assert error.remote_type == "subprocess.CalledProcessError"
    assert "check_call" in error.remote_traceback
    assert await error.remote_exception.returncode == 1
    with pytest.raises(pushy.RemoteError, match="SystemExit"):
        await conn.modules.sys.exit(3)
    assert await conn.eval("1") == 1


async def test_callbacks_plain_and_async(conn: pushy.Session) -> None:
    apply = await conn.eval("lambda f, *a: f(*a)")
    assert await apply(lambda x: x * 10, 4) == 40

    async def nested(x: int) -> int:
        # A callback that itself calls the remote: must not deadlock.
        return await conn.modules.operator.add(x, 1)

    assert await apply(nested, 1) == 2

    def failing() -> None:
        raise ValueError("from the controller")

    with pytest.raises(ValueError, match="from the controller"):
        await apply(failing)


async def test_concurrent_requests_run_in_parallel(conn: pushy.Session) -> None:
    async def sleep() -> None:
        await conn.modules.time.sleep(0.5)

    start = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(sleep)
    assert time.monotonic() - start < 2.0
    results = []

    async def call(i: int) -> None:
        results.append(await conn.modules.operator.mul(i, 2))

    async with anyio.create_task_group() as group:
        for i in range(200):
            group.start_soon(call, i)
    assert sorted(results) == [i * 2 for i in range(200)]


async def test_cancellation_leaves_session_usable(conn: pushy.Session) -> None:
    with anyio.move_on_after(0.2):
        await conn.modules.time.sleep(2)
    assert await conn.eval("1 + 1") == 2
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.1):
            await conn.eval("__import__('time').sleep(1) or object()")
    assert await conn.eval("2 + 2") == 4


async def test_threads_on_the_remote(conn: pushy.Session) -> None:
    await conn.execute(
        "import threading\n"
        "results = []\n"
        "threads = [threading.Thread(target=lambda i=i: results.append(i)) for i in range(5)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
    )
    assert sorted(await conn.eval("results")) == [0, 1, 2, 3, 4]


async def test_nested_connect(remote_python: str) -> None:
    """A remote interpreter connecting onwards: three distinct pids."""
    async with pushy.connect("local:", python=sys.executable) as conn:
        await conn.execute(
            "import asyncio, os, aiopushy\n"
            "async def _inner():\n"
            "    async with aiopushy.connect('local:', python=PY) as inner:\n"
            "        return await inner.modules.os.getpid()\n",
            globals=None,
        )
        await conn.execute(f"PY = {remote_python!r}")
        inner_pid = await conn.eval("asyncio.run(_inner())")
        middle_pid = await conn.modules.os.getpid()
        assert len({os.getpid(), middle_pid, inner_pid}) == 3


async def test_remote_output_reaches_local_streams(
    conn: pushy.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    await conn.eval("print('to stdout')")
    await conn.eval("print('to stderr', file=__import__('sys').stderr)")
    await conn.execute("import subprocess; subprocess.run(['echo', 'from a child'])")
    await anyio.sleep(0.2)  # the child's output travels through a pipe of its own
    captured = capsys.readouterr()
    assert "to stdout\n" in captured.out
    assert "to stderr\n" in captured.err
    assert "from a child" in captured.out


async def test_output_hook(remote_python: str) -> None:
    seen: list[tuple[str, bytes]] = []
    async with pushy.connect(
        "local:", python=remote_python, output=lambda s, d: seen.append((s, d))
    ) as conn:
        await conn.eval("print('x')")
        conn.output = lambda s, d: seen.append(("other", d))
        await conn.eval("print('y')")
    assert ("stdout", b"x\n") in seen
    assert ("other", b"y\n") in seen


async def test_env_and_cwd(remote_python: str, tmp_path: object) -> None:
    async with pushy.connect(
        "local:", python=remote_python, env={"AIOPUSHY_TEST": "yes"}, cwd=str(tmp_path)
    ) as conn:
        assert await conn.modules.os.environ.get("AIOPUSHY_TEST") == "yes"
        assert await conn.modules.os.getcwd() == os.path.realpath(str(tmp_path))


async def test_bad_cwd_is_a_connect_error(remote_python: str) -> None:
    with pytest.raises(pushy.ConnectError, match="setup failed"):
        await pushy.connect("local:", python=remote_python, cwd="/no/such/directory")


async def test_proxies_are_released(conn: pushy.Session) -> None:
    for _ in range(100):
        batch = await conn.eval("[object() for _ in range(1000)]")
        assert len(batch) == 1000 and isinstance(batch[0], pushy.Proxy)
        del batch
    gc.collect()
    await anyio.sleep(0.05)
    remote = await conn.remote_statistics()
    assert remote["exported"] < 50, remote
    assert conn.statistics()["proxies"] < 50


async def test_compile_lambda_inside_a_larger_statement(conn: pushy.Session) -> None:
    pair = (await conn.compile(lambda a, b=2: a * b), 3)
    assert await pair[0](5) == 10
    # fmt: off
    if True: triple = await conn.compile(lambda t: t * 3)  # noqa: E701
    # fmt: on
    assert await triple(2) == 6


async def test_os_error_keeps_its_file_name(conn: pushy.Session) -> None:
    with pytest.raises(FileNotFoundError) as info:
        await conn.modules.os.stat("/no/such/path")
    assert info.value.filename == "/no/such/path"


async def test_calling_a_non_callable_local_object_is_a_remote_type_error(
    conn: pushy.Session,
) -> None:
    call = await conn.eval("lambda f: f()")
    with pytest.raises(TypeError, match="not callable"):
        await call(object())
    assert await conn.eval("1") == 1


async def test_a_failing_output_handler_does_not_break_the_session(
    remote_python: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(stream: str, data: bytes) -> None:
        raise RuntimeError("handler bug")

    async with pushy.connect("local:", python=remote_python, output=broken) as conn:
        await conn.eval("print('x')")
        assert await conn.eval("1 + 1") == 2
    assert "output handler failed" in caplog.text
