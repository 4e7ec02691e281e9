"""Taking a tuned model out: merged HF folders, GGUF files llama.cpp loads,
Ollama Modelfiles and the model and dataset cards.

It does not train or load runs' datasets for training.
"""
