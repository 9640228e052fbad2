"""Megatron-LM's own sample order on strata's indexed-dataset fixture, for the tests that check
strata serves Megatron's samples in Megatron's order (tests/train/megatron_data_test.cpp).

    python3 megatron_reference_samples.py MEGATRON_LM_ROOT FIXTURE_DIR OUT.json

Runs megatron/core/datasets from a Megatron-LM source tree (BlendedMegatronDatasetBuilder,
GPTDataset, BlendedDataset and helpers.cpp, compiled here with pybind11) with torch, the
tokenizer base class and the storage helpers stubbed: nothing of torch runs on this path. Needs
python3 with numpy and pybind11, and a C++ compiler.

For each configuration (prefixes with optional weights, split, seq_length, seed, training
samples) OUT holds the tokens of training samples at chosen indices (seq_length + 1 each, as
GPTDataset's _query_document_sample_shuffle_indices returns them) and, where Megatron builds a
held-out split without a size (one epoch; not for weighted blends), those of held-out samples.
"""
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import types

import numpy

CONFIGS = [
    # one epoch: the plain document, sample and shuffle indices
    {"name": "single", "data": ["corpus_uint16"], "split": "95,5,0", "seq_length": 32, "seed": 1234,
     "train_samples": 64},
    # three epochs, the last shuffled apart (needed for less than 80 % of its samples)
    {"name": "epochs", "data": ["corpus_uint16"], "split": "90,10,0", "seq_length": 16, "seed": 7,
     "train_samples": 2000},
    # weights: Megatron's BlendedDataset by weight over two datasets
    {"name": "weighted", "data": ["0.3", "corpus_uint16", "0.7", "corpus_int32"], "split": "98,2,0",
     "seq_length": 24, "seed": 5, "train_samples": 500},
    # no weights: mixed by their sizes, the held-out split exhaustively
    {"name": "sized", "data": ["corpus_uint16", "corpus_int32"], "split": "80,20,0", "seq_length": 20, "seed": 11,
     "train_samples": 300},
]


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def load(root, name):
    path = os.path.join(root, *name.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def megatron_datasets(root, build_dir):
    nothing = lambda *a, **k: None  # noqa: E731
    for name in ("megatron", "megatron.core", "megatron.core.datasets"):
        stub(name, __path__=[])
    torch = stub("torch", __path__=[], Tensor=object)
    torch.utils = stub("torch.utils", __path__=[])
    torch.utils.data = stub("torch.utils.data", Dataset=object)
    torch.distributed = stub("torch.distributed", is_initialized=lambda: False)
    stub("megatron.core.utils", log_single_rank=nothing)
    stub("megatron.core.safe_globals", safe_numpy_load=numpy.load)
    stub("megatron.core.tokenizers", MegatronTokenizerBase=object)
    stub("megatron.core.msc_utils", MultiStorageClientFeature=types.SimpleNamespace(is_enabled=lambda: False),
         maybe_msc=types.SimpleNamespace(open=open))
    stub("megatron.core.datasets.object_storage_utils", S3Config=object, ObjectStorageConfig=object,
         cache_index_file=nothing, dataset_exists=nothing, get_index_cache_path=nothing,
         get_object_storage_access=nothing, is_object_storage_path=lambda *a, **k: False, parse_s3_path=nothing)
    sys.modules["megatron.core.datasets"].__path__ = [os.path.join(root, "megatron", "core", "datasets")]
    # helpers.cpp, as Megatron's Makefile builds it
    import pybind11
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = os.path.join(build_dir, "helpers_cpp" + suffix)
    subprocess.run(["c++", "-O2", "-shared", "-std=c++17", "-fPIC", f"-I{pybind11.get_include()}",
                    f"-I{sysconfig.get_paths()['include']}", os.path.join(root, "megatron/core/datasets/helpers.cpp"),
                    "-o", out], check=True)
    spec = importlib.util.spec_from_file_location("megatron.core.datasets.helpers_cpp", out)
    helpers_cpp = importlib.util.module_from_spec(spec)
    sys.modules["megatron.core.datasets.helpers_cpp"] = helpers_cpp
    spec.loader.exec_module(helpers_cpp)
    for name in ("utils", "indexed_dataset", "helpers", "blended_megatron_dataset_config", "megatron_dataset",
                 "gpt_dataset", "blended_dataset", "blended_megatron_dataset_builder"):
        load(root, "megatron.core.datasets." + name)
    return sys.modules


class Tokenizer:
    def __init__(self, eod, vocab_size):
        self.eod, self.vocab_size = eod, vocab_size
        self.unique_identifiers = {"class": "Tokenizer"}


def spread(size, count=24):
    """The first indices, and more spread over the rest (the last included)."""
    head = list(range(min(size, count)))
    tail = sorted({int(i) for i in numpy.linspace(0, size - 1, count)} - set(head)) if size > count else []
    return head + tail


def tokens_of(dataset, index):
    if hasattr(dataset, "dataset_index"):  # BlendedDataset
        return tokens_of(dataset.datasets[dataset.dataset_index[index]], dataset.dataset_sample_index[index])
    text, _, _ = dataset._query_document_sample_shuffle_indices(int(index))
    return [int(t) for t in text]


def main():
    root, fixture, out = sys.argv[1:4]
    cache = tempfile.mkdtemp()
    modules = megatron_datasets(root, cache)
    gpt = modules["megatron.core.datasets.gpt_dataset"]
    builder_module = modules["megatron.core.datasets.blended_megatron_dataset_builder"]
    utils = modules["megatron.core.datasets.utils"]
    vocab = json.load(open(os.path.join(fixture, "documents.json")))
    tokenizer = Tokenizer(vocab["eod"], vocab["eod"] + 3)
    results = []
    for c in CONFIGS:
        words = [w if w[0].isdigit() else os.path.join(fixture, w) for w in c["data"]]
        blend = utils.get_blend_from_list(words)
        config = gpt.GPTDatasetConfig(random_seed=c["seed"], sequence_length=c["seq_length"], blend=blend,
                                      split=c["split"], path_to_cache=cache, tokenizer=tokenizer,
                                      reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False)
        weighted = blend[1] is not None
        sizes = [c["train_samples"], 1 if weighted else None, 1 if weighted else None]
        train, valid, _ = builder_module.BlendedMegatronDatasetBuilder(gpt.GPTDataset, sizes, lambda: True,
                                                                        config).build()
        result = {**c, "train_size": len(train), "train": {str(i): tokens_of(train, i) for i in spread(len(train))}}
        if not weighted:
            result["held_out_size"] = len(valid)
            result["held_out"] = {str(i): tokens_of(valid, i) for i in spread(len(valid), 8)}
        results.append(result)
    json.dump({"made_by": "scripts/megatron_reference_samples.py", "configs": results}, open(out, "w"))


if __name__ == "__main__":
    main()
