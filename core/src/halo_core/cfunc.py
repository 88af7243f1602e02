"""C library calls through ``_ctypes``, the C half of ctypes.

The VRRP process makes a few calls the standard library has no wrapper for
(``malloc_trim``, ``syscall``). The ctypes package around ``_ctypes`` (its classes and
functions) is about 0.2 MB resident for the process's life and is not needed for calls
whose arguments are integers and buffers: ``_ctypes`` converts those itself.
"""

from __future__ import annotations

import _ctypes
import os
from collections.abc import Callable
from typing import Any


class _CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_int
    _type_ = "i"


class _CLong(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_long
    _type_ = "l"


class _CChar(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_char
    _type_ = "c"


class _IntFunction(_ctypes.CFuncPtr):  # a ctypes.CDLL's function type, errno kept
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


class _LongFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CLong


class _Program:  # ctypes.CDLL(None): the symbols of the process and its libraries
    # the stubs know only named libraries; None is the program itself (dlopen(3))
    _handle = _ctypes.dlopen(None, os.RTLD_NOW | os.RTLD_GLOBAL)  # type: ignore[arg-type]


def function(name: str, *, returns_long: bool = False) -> Callable[..., int]:
    """The C library's ``name``; it returns an ``int`` (or a ``long``). Integer arguments
    are passed as ``int``; pass :func:`buffer` objects for pointers. AttributeError if the
    C library has no such function."""
    kind = _LongFunction if returns_long else _IntFunction
    # the stubs want a CDLL: any object with the library's _handle does (CDLL's own way)
    return kind((name, _Program))  # type: ignore[no-any-return, arg-type]


def buffer(data: bytes | int) -> Any:
    """A C buffer holding ``data`` (or that many zero bytes): passed to a function it is a
    pointer; ``address(...)`` gives its address for a structure, ``bytes(...)`` its
    contents."""
    size = data if isinstance(data, int) else len(data)
    kind = type("CBuffer", (_ctypes.Array,), {"_type_": _CChar, "_length_": max(size, 1)})
    buf = kind()
    if not isinstance(data, int):
        _ctypes_memmove(buf, data, size)
    return buf


def address(buf: Any) -> int:
    """The address of a :func:`buffer`."""
    return int(_ctypes.addressof(buf))


_ctypes_memmove = function("memmove")


def errno() -> int:
    """The ``errno`` the last of these calls left (in this thread)."""
    return int(_ctypes.get_errno())
