/* SPDX-License-Identifier: MIT */
/*
 * Vocabularies for generated GGUF files (tiermem synth, tiermem convert):
 * small but real tokenizers that llama.cpp loads and tokenizes with, written
 * as GGUF tokenizer.* metadata.
 */
#ifndef TIERMEM_CLI_SYNTH_VOCAB_H
#define TIERMEM_CLI_SYNTH_VOCAB_H

#include <stdint.h>

struct tm_gguf_writer;

enum synth_vocab_kind {
	SYNTH_VOCAB_SPM,	/* tokenizer.ggml.model "llama": <unk> <s> </s>, <0xNN> bytes, scored pieces */
	SYNTH_VOCAB_GPT2,	/* "gpt2" byte-level BPE, pre "qwen2", merges, <|endoftext|> <|im_start|> <|im_end|> */
};

/* Smallest n_vocab each kind can be written with. */
uint32_t synth_vocab_min(enum synth_vocab_kind kind);

/*
 * Write the tokenizer metadata for n_vocab tokens: byte tokens, pieces and
 * merges learned from a built-in English text, then filler pieces.
 * Deterministic (no randomness). 0 or a negative errno (tm_err set).
 */
int synth_vocab_write(struct tm_gguf_writer *w, enum synth_vocab_kind kind, uint32_t n_vocab);

#endif
