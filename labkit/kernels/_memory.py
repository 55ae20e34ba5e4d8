"""Memory-access primitives for numba kernels: prefetch, streaming line stores, store fence.

A kernel that repairs short windows scattered through a large recording is bound by
memory latency, not arithmetic: each window row is a few cache lines in a different
DRAM page. Two things bring it close to the memory-traffic floor:

- :func:`prefetch_write` asks for the lines a later iteration will read (the anchors)
  so that many misses are in flight at once instead of one after another;
- :func:`stream_linear_line` writes a whole, 64-byte-aligned cache line with a
  non-temporal (streaming) store, so the line is never read from memory only to be
  overwritten (no read-for-ownership). :func:`store_fence` orders those stores before
  the kernel returns.

All three are plain LLVM IR (``llvm.prefetch``, a ``!nontemporal`` vector store, a
``seq_cst`` fence), so they compile on any target numba supports; on a target without
prefetch or streaming-store instructions the prefetch is dropped and the store is an
ordinary one. The values written are the same either way.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LINE_DOUBLES", "prefetch_write", "store_fence", "stream_linear_line"]

#: float64 values per 64-byte cache line.
LINE_DOUBLES = 8

_I32 = ir.IntType(32)
_BYTE_PTR = ir.IntType(8).as_pointer()
# intrinsic name mangling differs between typed-pointer and opaque-pointer LLVM
_PREFETCH = "llvm.prefetch.p0" if str(_BYTE_PTR) == "ptr" else "llvm.prefetch.p0i8"


def _element_pointer(context, builder, array_type, array_value, index):
    """Pointer to element ``index`` of a contiguous 1-D numba array."""
    array = context.make_array(array_type)(context, builder, array_value)
    return builder.gep(array.data, [index])


@intrinsic
def prefetch_write(typingctx, flat, index):
    """Hint that ``flat[index]`` will be read and written soon (fetch its cache line).

    ``flat`` is a contiguous 1-D float64 array; a prefetch never faults, but callers
    keep ``index`` inside the array.
    """
    sig = types.void(flat, index)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        fnty = ir.FunctionType(ir.VoidType(), [_BYTE_PTR, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        # rw = 1 (write), locality = 3 (keep in all levels), cache type = 1 (data)
        args = [builder.bitcast(ptr, _BYTE_PTR), ir.Constant(_I32, 1)]
        builder.call(fn, [*args, ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def stream_linear_line(typingctx, flat, index, offsets, k0, slope, y0):
    """``flat[index + m] = slope * offsets[k0 + m] + y0`` for ``m = 0 … 7``, one streaming store.

    The arithmetic is the scalar expression evaluated lane by lane (a multiply, then an
    add, no fused multiply-add), so every value is bit-identical to the scalar loop.
    ``flat[index]`` must start a 64-byte line (the caller checks the address).
    """
    sig = types.void(flat, index, offsets, k0, slope, y0)

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.DoubleType(), LINE_DOUBLES)
        src = _element_pointer(context, builder, signature.args[2], args[2], args[3])
        ks = builder.load(builder.bitcast(src, vec.as_pointer()), align=8)

        def splat(x):
            v = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(_I32, 0))
            mask = ir.Constant(ir.VectorType(_I32, LINE_DOUBLES), [0] * LINE_DOUBLES)
            return builder.shuffle_vector(v, v, mask)

        values = builder.fadd(builder.fmul(splat(args[4]), ks), splat(args[5]))
        dst = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        store = builder.store(values, builder.bitcast(dst, vec.as_pointer()), align=64)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """Order every earlier store (streaming stores included) before any later access."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen
