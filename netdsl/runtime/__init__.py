"""The generated training scripts' runtime: train.py's code, as importable modules.

`netdsl compile ... --train` writes a train.py that must run on its own, beside the
model file, with no netdsl installed: it imports the standard library, its framework
and the model module, nothing else. Its code is therefore copied into it: a short
header that netdsl writes for the network (the recipe of its `train:` section and a
few constants: templates/<target>/train.py.j2), then these modules' text, verbatim:

* common.py, what both scripts share (the recipe's batch augmentations, --input-size,
  --data, the digits split, ...), framework-free;
* torch_train.py, the PyTorch script's (DDP under torchrun, checkpoints, resume);
* keras_train.py, the Keras script's (model.fit, tf.distribute, resume).

Here they are ordinary modules, so ruff, type checkers, coverage and in-process tests
see them. The rules that keep a copy working:

* Only what follows a module's `COPY_MARK` line is copied. Above it sit the module's
  docstring, its imports (train.py gets their union, sorted, at its top) and, in the
  framework modules, stand-ins for the names train.py's header defines (NETWORK,
  RECIPE, INPUT_SHAPE, build_model, ...), which tests set.
* The copied text imports nothing at module level; a function may import lazily what
  one data source needs (scikit-learn, torchvision, tensorflow). Modules at the top
  may be the standard library's and the framework's only: never netdsl. A framework
  module's `from .common import ...` stands for common.py's text, copied above its own.
* common.py reads none of the header's names (the framework modules pass what it
  needs), and no two modules define the same name: in train.py they share one
  namespace.
* The text is formatted for ruff's defaults (88 columns: ruff.toml here), as
  generated files are.
"""

# the line after which a runtime module's text is copied into train.py
COPY_MARK = "# ==== train.py: the rest of this module is copied into it verbatim ===="
