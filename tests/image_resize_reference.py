#!/usr/bin/env python3
# Generates extra Resize/Upsample conformance folders (opset 18 axes,
# keep_aspect_ratio_policy, antialias, half_pixel_symmetric, N-D, dtypes) into
# /tmp/imgtests from a numpy port of the ONNX >= 1.13 reference Resize, since
# the installed test data predates those features. Run with /usr/bin/python3,
# then: ./parallax conformance /tmp/imgtests/*
import sys, os, shutil, itertools
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
sys.path.insert(0, '/usr/lib/python3/dist-packages/onnx/backend/test/case/node')

OUT = '/tmp/imgtests'
shutil.rmtree(OUT, ignore_errors=True)

# ---- extended reference (ONNX >= 1.13 semantics) ----
def cubic_coeffs(ratio, scale, A=-0.75):
    return np.array([((A * (ratio + 1) - 5 * A) * (ratio + 1) + 8 * A) * (ratio + 1) - 4 * A,
              ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1,
              ((A + 2) * (1 - ratio) - (A + 3)) * (1 - ratio) * (1 - ratio) + 1,
              ((A * ((1 - ratio) + 1) - 5 * A) * ((1 - ratio) + 1) + 8 * A) * ((1 - ratio) + 1) - 4 * A])
def cubic_coeffs_aa(ratio, scale, A=-0.75):
    scale = min(scale, 1.0)
    def cc(x):
        x = abs(x); x2 = x*x; x3 = x*x2
        if x <= 1: return (A + 2) * x3 - (A + 3) * x2 + 1
        if x < 2: return A * x3 - 5 * A * x2 + 8 * A * x - 4 * A
        return 0.0
    i_start = int(np.floor(-2 / scale) + 1); i_end = 2 - i_start
    c = np.array([cc(scale * (i - ratio)) for i in range(i_start, i_end)])
    return c / c.sum()
def linear_coeffs(ratio, scale): return np.array([1 - ratio, ratio])
def linear_coeffs_aa(ratio, scale):
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1); fp = 2 - 2 * start
    args = (np.arange(start, start + fp) - ratio) * scale
    c = np.clip(1 - np.abs(args), 0, 1)
    return np.array(c) / c.sum()
def nearest_coeffs(ratio, mode='round_prefer_floor'):
    if type(ratio) == int or float(ratio).is_integer(): return np.array([0, 1])
    if mode == 'round_prefer_floor': return np.array([ratio <= 0.5, ratio > 0.5])
    if mode == 'round_prefer_ceil': return np.array([ratio < 0.5, ratio >= 0.5])
    if mode == 'floor': return np.array([1, 0])
    return np.array([0, 1])

def neighbor(x, n, data):
    pad = int(np.ceil(n / 2)); padded = np.pad(data, pad, mode='edge'); x += pad
    idx = sorted(sorted(range(len(padded)), key=lambda i: (abs(x - i), i))[:n])
    return np.array(idx) - pad, padded[idx]

def interp1d(data, scale, out_int, x, coeffs_fn, roi, ev, ctm, excl):
    data = np.asarray(data, dtype=np.float64)
    iw = len(data); ow = scale * iw
    if ctm == 'align_corners':
        x_ori = 0. if ow == 1 else x * (iw - 1) / (ow - 1)
    elif ctm == 'asymmetric': x_ori = x / scale
    elif ctm == 'tf_crop_and_resize':
        if ow == 1: x_ori = (roi[1] - roi[0]) * (iw - 1) / 2
        else: x_ori = x * (roi[1] - roi[0]) * (iw - 1) / (ow - 1)
        x_ori += roi[0] * (iw - 1)
        if x_ori < 0 or x_ori > iw - 1: return ev
    elif ctm == 'pytorch_half_pixel':
        x_ori = -0.5 if ow == 1 else (x + 0.5) / scale - 0.5
    elif ctm == 'half_pixel': x_ori = (x + 0.5) / scale - 0.5
    elif ctm == 'half_pixel_symmetric':
        adj = out_int / ow; center = iw / 2; off = center * (1 - adj)
        x_ori = off + (x + 0.5) / scale - 0.5
    x_ori = float(x_ori)
    xi = int(np.floor(x_ori))
    ratio = 1 if x_ori.is_integer() else x_ori - xi
    c = np.array(coeffs_fn(ratio, scale), dtype=np.float64)
    idx, pts = neighbor(x_ori, len(c), data)
    if excl:
        for i, j in enumerate(idx):
            if j < 0 or j >= iw: c[i] = 0
        c /= c.sum()
    return float(np.dot(c, pts))

def interpnd(data, n, scales, outs, x, fn, roi, **kw):
    if n == 1: return interp1d(data, scales[0], outs[0], x[0], fn, roi, **kw)
    res = [interpnd(data[i], n - 1, scales[1:], outs[1:], x[1:], fn,
                    None if roi is None else np.concatenate([roi[1:n], roi[n + 1:]]), **kw)
           for i in range(data.shape[0])]
    return interp1d(res, scales[0], outs[0], x[0], fn, None if roi is None else [roi[0], roi[n]], **kw)

def resize_ref(X, mode='nearest', scales=None, sizes=None, roi=None, axes=None, ctm='half_pixel',
               nearest_mode='round_prefer_floor', A=-0.75, excl=False, ev=0.0, policy='stretch', aa=False):
    r = X.ndim
    if mode == 'nearest': fn = lambda ratio, s: nearest_coeffs(ratio, nearest_mode)
    elif mode == 'linear': fn = linear_coeffs_aa if aa else linear_coeffs
    else:
        f_ = cubic_coeffs_aa if aa else cubic_coeffs
        fn = lambda ratio, s: f_(ratio, s, A)
    if axes is not None:
        axes = [a % r for a in axes]
        if scales is not None:
            ns = [1.0] * r
            for i, d in enumerate(axes): ns[d] = scales[i]
            scales = np.array(ns)
        if sizes is not None:
            no = list(X.shape)
            for i, d in enumerate(axes): no[d] = sizes[i]
            sizes = no
        if roi is not None:
            nr = [0.0] * r + [1.0] * r; na = len(axes)
            for i, d in enumerate(axes): nr[d] = roi[i]; nr[r + d] = roi[na + i]
            roi = np.array(nr)
    else: axes = list(range(r))
    if sizes is not None:
        scales = np.array(sizes) / np.array(X.shape)
        if policy != 'stretch':
            s = scales[axes].min() if policy == 'not_larger' else scales[axes].max()
            scales = np.array([s if i in axes else 1.0 for i in range(r)])
            sizes = [int(s * X.shape[i] + 0.5) if i in axes else X.shape[i] for i in range(r)]
        outs = list(sizes)
    else:
        outs = list((np.array(scales) * np.array(X.shape)).astype(int))
    if X.size <= 64 and np.prod(outs) <= 200:
        ret = np.zeros(outs)
        for x in itertools.product(*[range(o) for o in outs]):
            ret[x] = interpnd(X, r, list(scales), outs, list(x), fn, roi, ev=ev, ctm=ctm, excl=excl)
        return ret
    cur = X.astype(np.float64)
    for d in reversed(range(r)):
        cur = np.moveaxis(cur, d, -1)
        fib = cur.reshape(-1, cur.shape[-1])
        rr = None if roi is None else [roi[d], roi[r + d]]
        res = np.array([[interp1d(f, scales[d], outs[d], x, fn, rr, ev, ctm, excl) for x in range(outs[d])] for f in fib])
        cur = np.moveaxis(res.reshape(cur.shape[:-1] + (outs[d],)), -1, d)
    return cur

# ---- test writer ----
def write(name, op, inputs, outputs, attrs, opset, input_names=None):
    d = os.path.join(OUT, name); os.makedirs(os.path.join(d, 'test_data_set_0'))
    in_names = input_names or [f'in{i}' for i in range(len(inputs))]
    real = [(n, v) for n, v in zip(in_names, inputs) if n != '']
    node = helper.make_node(op, in_names, [f'out{i}' for i in range(len(outputs))], **attrs)
    def vi(n, v): return helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype) if hasattr(helper, 'np_dtype_to_tensor_dtype') else onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[v.dtype], v.shape)
    g = helper.make_graph([node], name, [vi(n, v) for n, v in real], [vi(f'out{i}', v) for i, v in enumerate(outputs)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
    m.ir_version = 8
    onnx.save(m, os.path.join(d, 'model.onnx'))
    for i, (n, v) in enumerate(real):
        t = numpy_helper.from_array(v, n); open(os.path.join(d, 'test_data_set_0', f'input_{i}.pb'), 'wb').write(t.SerializeToString())
    for i, v in enumerate(outputs):
        t = numpy_helper.from_array(v, f'out{i}'); open(os.path.join(d, 'test_data_set_0', f'output_{i}.pb'), 'wb').write(t.SerializeToString())

rng = np.random.default_rng(0)
def resize_case(name, X, opset=18, scales=None, sizes=None, roi=None, axes=None, dtype=np.float32, **kw):
    attrs = {}
    keymap = dict(mode='mode', ctm='coordinate_transformation_mode', nearest_mode='nearest_mode', A='cubic_coeff_a',
                  excl='exclude_outside', ev='extrapolation_value', policy='keep_aspect_ratio_policy', aa='antialias')
    for k, v in kw.items(): attrs[keymap[k]] = int(v) if isinstance(v, bool) else v
    if axes is not None: attrs['axes'] = axes
    f32 = lambda v: None if v is None else np.array(v, np.float32).astype(np.float64)
    Y = resize_ref(X.astype(np.float64), scales=f32(scales), sizes=sizes, roi=f32(roi), axes=axes, **kw).astype(dtype)
    ins = [X.astype(dtype),
           np.array(roi if roi is not None else [], dtype=np.float32),
           np.array(scales if scales is not None else [], dtype=np.float32),
           np.array(sizes if sizes is not None else [], dtype=np.int64)]
    names = ['X', 'roi' if roi is not None else '', 'scales' if scales is not None else '', 'sizes' if sizes is not None else '']
    write(name, 'Resize', ins, [Y], attrs, opset, names)

X44 = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
resize_case('aa_linear_scales', X44, scales=[1, 1, 0.6, 0.6], mode='linear', aa=True)
resize_case('aa_cubic_scales', X44, scales=[1, 1, 0.6, 0.6], mode='cubic', aa=True)
resize_case('aa_linear_sizes', X44, sizes=[1, 1, 3, 3], mode='linear', aa=True)
resize_case('aa_cubic_sizes', X44, sizes=[1, 1, 3, 3], mode='cubic', aa=True)
R = rng.standard_normal((1, 2, 9, 13)).astype(np.float32)
resize_case('aa_linear_big', R, scales=[1, 1, 0.3, 0.45], mode='linear', aa=True)
resize_case('aa_cubic_big_excl', R, scales=[1, 1, 0.3, 0.45], mode='cubic', aa=True, excl=True, A=-0.5)
resize_case('aa_linear_up', R, scales=[1, 1, 1.5, 2.0], mode='linear', aa=True)
resize_case('axes_nearest', X44, scales=[2.0, 3.0], axes=[2, 3], mode='nearest')
resize_case('axes_neg_sizes', X44, sizes=[7, 3], axes=[-1, -2], mode='linear')
resize_case('keep_not_larger', X44, sizes=[7, 8], axes=[2, 3], mode='nearest', policy='not_larger')
resize_case('keep_not_smaller', X44, sizes=[7, 8], axes=[2, 3], mode='nearest', policy='not_smaller')
resize_case('keep_not_larger_full', X44, sizes=[1, 1, 7, 8], mode='linear', policy='not_larger')
resize_case('hps_linear_down', X44, scales=[1, 1, 0.6, 0.6], mode='linear', ctm='half_pixel_symmetric', opset=18)
resize_case('hps_nearest_up', X44, scales=[1, 1, 2.5, 1.7], mode='nearest', ctm='half_pixel_symmetric', opset=18)
resize_case('crop_axes', X44, sizes=[3, 3], axes=[2, 3], roi=[0.4, 0.6, 0.6, 0.8], mode='linear', ctm='tf_crop_and_resize', ev=10.0)
resize_case('crop_nearest', X44, sizes=[1, 1, 5, 5], roi=[0, 0, -0.2, 0.3, 1, 1, 1.2, 0.9], mode='nearest', ctm='tf_crop_and_resize', ev=-3.0)
resize_case('crop_cubic', X44, sizes=[1, 1, 5, 3], roi=[0, 0, 0.1, 0.3, 1, 1, 0.8, 0.9], mode='cubic', ctm='tf_crop_and_resize', ev=2.0, opset=13)
R5 = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
resize_case('trilinear', R5, scales=[1, 1, 2, 1.5, 0.5], mode='linear', opset=13)
resize_case('tricubic_ac', R5, sizes=[1, 2, 4, 5, 7], mode='cubic', ctm='align_corners', opset=13)
resize_case('nearest5d_ceil', R5, scales=[1, 1, 2, 1.5, 0.5], mode='nearest', nearest_mode='ceil', ctm='asymmetric', opset=13)
R1 = rng.standard_normal((6,)).astype(np.float32)
resize_case('linear1d', R1, sizes=[11], mode='linear', opset=13)
resize_case('cubic1d_down', R1, sizes=[4], mode='cubic', opset=13)
R3 = rng.standard_normal((2, 5, 7)).astype(np.float32)
resize_case('linear3d_allaxes', R3, scales=[1.5, 0.8, 1.3], mode='linear', ctm='pytorch_half_pixel', opset=13)
Rb = rng.standard_normal((2, 3, 17, 23)).astype(np.float32)
for s in (2, 4):
    resize_case(f'nearest_x{s}', Rb, scales=[1, 1, s, s], mode='nearest', opset=13)
    resize_case(f'nearest_x{s}_asym', Rb, scales=[1, 1, s, s], mode='nearest', ctm='asymmetric', nearest_mode='floor', opset=13)
    resize_case(f'bilinear_x{s}', Rb, scales=[1, 1, s, s], mode='linear', opset=13)
resize_case('bilinear_ac_sizes', Rb, sizes=[2, 3, 30, 11], mode='linear', ctm='align_corners', opset=13)
resize_case('nearest_down_rpc', Rb, sizes=[2, 3, 7, 9], mode='nearest', nearest_mode='round_prefer_ceil', opset=13)
resize_case('nearest_uint8', (rng.random((1, 3, 5, 6)) * 255).astype(np.uint8), scales=[1, 1, 2, 1.5], dtype=np.uint8, mode='nearest', opset=13)
resize_case('nearest_int64', (rng.random((1, 3, 5, 6)) * 1000).astype(np.int64), sizes=[1, 3, 3, 11], dtype=np.int64, mode='nearest', opset=13)
resize_case('linear_f64', Rb.astype(np.float64), scales=[1, 1, 1.7, 0.6], dtype=np.float64, mode='linear', opset=13)
resize_case('cubic_f64_excl', Rb.astype(np.float64), scales=[1, 1, 1.7, 0.6], dtype=np.float64, mode='cubic', excl=True, opset=13)
# mixed modes sweep
for mode in ('nearest', 'linear', 'cubic'):
    for ctm in ('half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric'):
        resize_case(f'sweep_{mode}_{ctm}', R[:, :, :6, :7], scales=[1, 1, 1.7, 0.6], mode=mode, ctm=ctm, opset=13)
# Resize-10 / Upsample
Xs = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
Yl = resize_ref(Xs.astype(np.float64), mode='linear', scales=np.array([1, 1, 2, 3.0]), ctm='asymmetric').astype(np.float32)
write('resize10_linear', 'Resize', [Xs, np.array([1, 1, 2, 3], np.float32)], [Yl], {'mode': 'linear'}, 10)
write('upsample9_linear', 'Upsample', [Xs, np.array([1, 1, 2, 3], np.float32)], [Yl], {'mode': 'linear'}, 9)
write('upsample7_linear', 'Upsample', [Xs], [Yl], {'mode': 'linear', 'scales': [1.0, 1.0, 2.0, 3.0]}, 7)
Yn = Xs.repeat(2, axis=2).repeat(3, axis=3)
write('upsample7_nearest', 'Upsample', [Xs], [Yn], {'mode': 'nearest', 'scales': [1.0, 1.0, 2.0, 3.0]}, 7)
write('resize10_nearest', 'Resize', [Xs, np.array([1, 1, 2, 3], np.float32)], [Yn], {'mode': 'nearest'}, 10)
print('ok', len(os.listdir(OUT)))
