"""A Keras-semantics reference without TensorFlow: just enough of Keras'
`backend`, `layers`, `models` and `utils` for the real keras_applications
builders (Debian python3-keras-applications) to build their ResNets, which
then run in float64 through PyTorch ops with Keras' layer semantics
(channels_last, TensorFlow's SAME padding, BatchNormalization(epsilon)), and
write themselves in Keras' file formats.

    net = keras_shim.build(keras_applications.resnet_common.ResNet50, include_top=True, weights=None)
    keras_shim.randomize(net, seed)
    outputs = net.run(x_nhwc)                     # {layer name: array}, plus "logits"
    net.layers                                    # in Keras' order (keras_layer_order)
    keras_shim.save_weights_h5(net, path)         # model.save_weights (Keras 2)
    keras_shim.save_model_h5(net, path)           # model.save (Keras 2)
    keras_shim.save_keras(net, path)              # model.save("m.keras") (Keras 3)
    keras_shim.save_weights_keras3(net, path)     # model.save_weights("m.weights.h5") (Keras 3)
"""
import io
import json
import types
import zipfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F


class KTensor:
    def __init__(self, layer, inputs, shape):
        self.layer, self.inputs, self.shape = layer, inputs, shape


class Layer:
    counts = {}
    snake = "layer"

    def __init__(self, name=None, **kwargs):
        if name is None:
            k = Layer.counts.get(self.snake, 0)
            Layer.counts[self.snake] = k + 1
            name = self.snake if k == 0 else f"{self.snake}_{k}"
        self.name, self.kwargs, self.weights, self.inputs = name, kwargs, [], []

    def __call__(self, x):
        inputs = list(x) if isinstance(x, (list, tuple)) else [x]
        self.inputs = inputs  # each layer is called once: its inbound tensors
        self.build([t.shape for t in inputs])
        out = KTensor(self, inputs, self.out_shape([t.shape for t in inputs]))
        return out

    def build(self, shapes):
        pass

    def out_shape(self, shapes):
        return shapes[0]

    def config(self):
        return {"name": self.name}

    def compute(self, xs, side):
        return xs[0]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class InputLayer(Layer):
    snake = "input_layer"

    def __init__(self, shape, name=None):
        super().__init__(name)
        self.shape = shape

    def config(self):
        return {"name": self.name, "batch_input_shape": [None, *self.shape], "batch_shape": [None, *self.shape]}


def Input(shape=None, tensor=None, name=None):
    layer = InputLayer(tuple(shape), name)
    return KTensor(layer, [], (None, *shape))


class ZeroPadding2D(Layer):
    snake = "zero_padding2d"

    def __init__(self, padding=(1, 1), name=None):
        super().__init__(name)
        p = padding
        self.pad = (p, p, p, p) if isinstance(p, int) else (
            (p[0], p[0], p[1], p[1]) if isinstance(p[0], int) else (*p[0], *p[1]))

    def out_shape(self, shapes):
        n, h, w, c = shapes[0]
        t, b, l, r = self.pad
        return (n, None if h is None else h + t + b, None if w is None else w + l + r, c)

    def config(self):
        return {"name": self.name, "padding": [list(self.pad[:2]), list(self.pad[2:])]}

    def compute(self, xs, side):
        t, b, l, r = self.pad
        return F.pad(xs[0], (0, 0, l, r, t, b))


class Conv2D(Layer):
    snake = "conv2d"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", use_bias=True, name=None, **kw):
        super().__init__(name)
        self.filters, self.k, self.s = filters, _pair(kernel_size), _pair(strides)
        self.padding, self.use_bias = padding.lower(), use_bias

    def build(self, shapes):
        if not self.weights:
            cin = shapes[0][-1]
            self.weights = [("kernel", np.zeros((*self.k, cin, self.filters)))]
            if self.use_bias:
                self.weights.append(("bias", np.zeros(self.filters)))

    def out_shape(self, shapes):
        n, h, w, _ = shapes[0]
        size = lambda i, k, s: None if i is None else (  # noqa: E731
            -(-i // s) if self.padding == "same" else (i - k) // s + 1)
        return (n, size(h, self.k[0], self.s[0]), size(w, self.k[1], self.s[1]), self.filters)

    def config(self):
        return {"name": self.name, "filters": self.filters, "kernel_size": list(self.k), "strides": list(self.s),
                "padding": self.padding, "use_bias": self.use_bias, "activation": "linear"}

    def compute(self, xs, side):
        x = xs[0].permute(0, 3, 1, 2)
        if self.padding == "same":  # TensorFlow: out = ceil(in / s), the odd pixel of padding at the end
            pads = []
            for axis in (1, 0):
                size, k, s = x.shape[2 + axis], self.k[axis], self.s[axis]
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        w = torch.from_numpy(self.weights[0][1]).permute(3, 2, 0, 1)
        b = torch.from_numpy(self.weights[1][1]) if self.use_bias else None
        return F.conv2d(x, w, b, self.s).permute(0, 2, 3, 1)


class BatchNormalization(Layer):
    snake = "batch_normalization"

    def __init__(self, axis=-1, epsilon=1e-3, name=None, **kw):
        super().__init__(name)
        self.epsilon = epsilon

    def build(self, shapes):
        if not self.weights:
            c = shapes[0][-1]
            self.weights = [(n, np.zeros(c)) for n in ("gamma", "beta", "moving_mean", "moving_variance")]

    def config(self):
        return {"name": self.name, "axis": [3], "epsilon": self.epsilon, "center": True, "scale": True}

    def compute(self, xs, side):
        g, b, m, v = (torch.from_numpy(a) for _, a in self.weights)
        return (xs[0] - m) / torch.sqrt(v + self.epsilon) * g + b


ACTIVATIONS = {"linear": lambda x: x, "relu": torch.relu, "sigmoid": torch.sigmoid,
               "softmax": lambda x: torch.softmax(x, dim=-1)}


class Activation(Layer):
    snake = "activation"

    def __init__(self, activation, name=None):
        super().__init__(name)
        self.activation = activation

    def config(self):
        return {"name": self.name, "activation": self.activation}

    def compute(self, xs, side):
        return ACTIVATIONS[self.activation](xs[0])


class Add(Layer):
    snake = "add"

    def compute(self, xs, side):
        return sum(xs)


def add(inputs, name=None):
    return Add(name=name)(inputs)


class MaxPooling2D(Layer):
    snake = "max_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool, self.s = _pair(pool_size), _pair(strides or pool_size)

    def out_shape(self, shapes):
        n, h, w, c = shapes[0]
        return (n, None if h is None else (h - self.pool[0]) // self.s[0] + 1,
                None if w is None else (w - self.pool[1]) // self.s[1] + 1, c)

    def config(self):
        return {"name": self.name, "pool_size": list(self.pool), "strides": list(self.s), "padding": "valid"}

    def compute(self, xs, side):
        return F.max_pool2d(xs[0].permute(0, 3, 1, 2), self.pool, self.s).permute(0, 2, 3, 1)


class GlobalAveragePooling2D(Layer):
    snake = "global_average_pooling2d"

    def out_shape(self, shapes):
        return (None, shapes[0][-1])

    def compute(self, xs, side):
        return xs[0].mean(dim=(1, 2))


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    snake = "global_max_pooling2d"

    def compute(self, xs, side):
        return xs[0].amax(dim=(1, 2))


class Dense(Layer):
    snake = "dense"

    def __init__(self, units, activation=None, name=None, **kw):
        super().__init__(name)
        self.units, self.activation = units, activation or "linear"

    def build(self, shapes):
        if not self.weights:
            self.weights = [("kernel", np.zeros((shapes[0][-1], self.units))), ("bias", np.zeros(self.units))]

    def out_shape(self, shapes):
        return (None, self.units)

    def config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation, "use_bias": True}

    def compute(self, xs, side):
        y = xs[0] @ torch.from_numpy(self.weights[0][1]) + torch.from_numpy(self.weights[1][1])
        side["logits"] = y  # the last Dense's pre-activation values
        return ACTIVATIONS[self.activation](y)


class Dropout(Layer):
    snake = "dropout"

    def __init__(self, rate, name=None, **kw):
        super().__init__(name)
        self.rate = rate

    def config(self):
        return {"name": self.name, "rate": self.rate}


class Flatten(Layer):
    snake = "flatten"

    def compute(self, xs, side):
        return xs[0].reshape(xs[0].shape[0], -1)


def keras_layer_order(output):
    """The layers in Keras' model.layers order, which Keras 3 numbers its
    weights-file paths by: map_graph in keras/src/ops/function.py (Keras 2's
    functional.py has the same). A depth-first walk from the output, inputs
    of each layer in call order, numbers each layer when first reached and
    lists it once all its inputs are done; walking that list backwards gives
    each layer its depth, the longest path to the output. Layers come deepest
    first, ties by their number."""
    number, finished, stack = {}, [], [(output, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            finished.append(t.layer)
        elif t.layer not in number:
            number[t.layer] = len(number)
            stack.append((t, True))
            stack += [(i, False) for i in reversed(t.inputs)]
    depth = {}
    for layer in reversed(finished):
        d = depth.setdefault(layer, 0)
        for t in layer.inputs:
            depth[t.layer] = max(depth.get(t.layer, 0), d + 1)
    return sorted(finished, key=lambda layer: (-depth[layer], number[layer]))


class Model:
    def __init__(self, inputs, outputs, name="model"):
        self.input, self.output, self.name = inputs, outputs, name
        self.layers = keras_layer_order(outputs)

    def run(self, x):
        """{layer name: float64 array} for every layer, and "logits"."""
        values, side = {}, {}

        def value(t):
            if t.layer.name not in values:
                values[t.layer.name] = (torch.from_numpy(np.asarray(x, np.float64)) if not t.inputs else
                                        t.layer.compute([value(i) for i in t.inputs], side))
            return values[t.layer.name]

        with torch.no_grad():
            value(self.output)
        out = {k: v.numpy() for k, v in values.items()}
        if "logits" in side:
            out["logits"] = side["logits"].numpy()
        return out

    @staticmethod
    def inbound(layer):
        return [t.layer.name for t in layer.inputs]


backend = types.SimpleNamespace(
    image_data_format=lambda: "channels_last", int_shape=lambda t: t.shape, is_keras_tensor=lambda t: True,
    backend=lambda: "tensorflow", floatx=lambda: "float32")
layers = types.SimpleNamespace(**{c.__name__: c for c in (
    ZeroPadding2D, Conv2D, BatchNormalization, Activation, Add, MaxPooling2D, GlobalAveragePooling2D,
    GlobalMaxPooling2D, Dense, Dropout, Flatten)}, Input=Input, add=add)
models = types.SimpleNamespace(Model=Model)
utils = types.SimpleNamespace(get_source_inputs=lambda t: t)
KWARGS = {"backend": backend, "layers": layers, "models": models, "utils": utils}


def start():
    """Restart automatic layer names: the next builder call starts a new model."""
    Layer.counts.clear()


def build(builder, **kwargs):
    start()
    return builder(**kwargs, **KWARGS)


def randomize(model, seed):
    """Seeded weights: He-normal kernels, small biases, random BatchNorm
    statistics; the last BN (or, in V2, the last conv) of each residual
    branch scaled down as trained networks have it, so that deep nets stay in
    range."""
    rng = np.random.default_rng(seed)
    v2 = any(layer.name == "post_bn" for layer in model.layers)
    for layer in model.layers:
        tail = layer.name.endswith("_3_bn") or layer.name.endswith("branch2c")
        new = []
        for var, a in layer.weights:
            if var == "kernel":
                fan_in = int(np.prod(a.shape[:-1]))
                scale = 0.2 if v2 and layer.name.endswith("_3_conv") else 1
                v = rng.normal(0, scale * np.sqrt(2.0 / fan_in), a.shape)
            elif var == "bias":
                v = rng.normal(0, 0.05, a.shape)
            elif var == "gamma":
                v = rng.uniform(0.1, 0.3, a.shape) if tail else rng.uniform(0.5, 1.5, a.shape)
            elif var in ("beta", "moving_mean"):
                v = rng.normal(0, 0.2, a.shape)
            else:
                v = rng.uniform(0.5, 2.0, a.shape)
            new.append((var, v))
        layer.weights = new


# --- Keras' file formats ---------------------------------------------------------

def _layer_config(model, layer, keras3):
    entry = {"class_name": type(layer).__name__, "config": layer.config(), "name": layer.name}
    inbound = model.inbound(layer)
    if keras3:
        entry.update({"module": "keras.layers", "registered_name": None,
                      "inbound_nodes": [{"args": [{"keras_history": [n, 0, 0]} for n in inbound]}] if inbound else []})
    else:
        entry["inbound_nodes"] = [[[n, 0, 0, {}] for n in inbound]] if inbound else []
    return entry


def model_config(model, keras3=False):
    return {"class_name": "Functional", "config": {
        "name": model.name, "layers": [_layer_config(model, l, keras3) for l in model.layers],
        "input_layers": [[model.input.layer.name, 0, 0]], "output_layers": [[model.output.layer.name, 0, 0]]}}


def _write_keras2_weights(group, model):
    group.attrs["layer_names"] = np.array([l.name.encode() for l in model.layers])
    group.attrs["backend"], group.attrs["keras_version"] = b"tensorflow", b"2.11.0"
    for layer in model.layers:
        g = group.create_group(layer.name)
        names = [f"{layer.name}/{var}:0" for var, _ in layer.weights]
        g.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
        for name, (_, a) in zip(names, layer.weights):
            g.create_dataset(name, data=a.astype(np.float32))


def save_weights_h5(model, path):
    with h5py.File(path, "w") as f:
        _write_keras2_weights(f, model)


def save_model_h5(model, path):
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(model_config(model))
        f.attrs["keras_version"], f.attrs["backend"] = "2.11.0", "tensorflow"
        _write_keras2_weights(f.create_group("model_weights"), model)


def _write_keras3_weights(f, model, names):
    """Keras 3's saving_lib layout: layers/<class in snake case>[_K]/vars/<i>,
    K counting that class's earlier layers in model.layers, variables
    trainable first; Keras >= 3.6 adds the layer's name as an attribute."""
    f.create_group("vars")
    seen = {}
    for layer in model.layers:
        k = seen[layer.snake] = seen.get(layer.snake, -1) + 1
        vars_group = f.create_group(f"layers/{layer.snake}{'_' + str(k) if k else ''}/vars")
        if names:
            vars_group.attrs["name"] = layer.name
        for i, (_, a) in enumerate(layer.weights):
            vars_group.create_dataset(str(i), data=a.astype(np.float32))


def save_weights_keras3(model, path, names=False):
    """model.save_weights("m.weights.h5") of Keras 3.0-3.5 (names=False) or >= 3.6."""
    with h5py.File(path, "w") as f:
        _write_keras3_weights(f, model, names)


def save_keras(model, path):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_keras3_weights(f, model, names=False)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        z.writestr("config.json", json.dumps({"module": "keras.src.models.functional", **model_config(model, True)}))
        z.writestr("model.weights.h5", buf.getvalue())
