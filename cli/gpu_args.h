/* SPDX-License-Identifier: MIT */
/*
 * The GPU options of run and logits: --gpu, and llama.cpp's -ngl N
 * (--n-gpu-layers N). Only all layers or none are supported: -ngl 0 is the
 * CPU, -ngl N with N at least the model's layer count (llama.cpp users write
 * 999) is the GPU, anything between is refused until hybrid placement exists.
 */
#ifndef TIERMEM_CLI_GPU_ARGS_H
#define TIERMEM_CLI_GPU_ARGS_H

#include "tiermem/gpu.h"
#include "tiermem/model.h"

#define GPU_ARGS_HELP \
	"  --gpu              run every layer on the GPU (CUDA), all weights in VRAM\n" \
	"  -ngl, --n-gpu-layers N  llama.cpp's spelling: 0 the CPU (default), N >= the\n" \
	"                     model's layers (e.g. 999) the same as --gpu\n"

/* getopt_long has no single-dash long options: rewrite "-ngl" to "--n-gpu-layers" first. */
void gpu_args_rewrite(int argc, char **argv);

/* Parse -ngl's value into *ngl; EXIT_USAGE and a message on bad input, else 0. */
int gpu_args_parse_ngl(const char *cmd, const char *s, long *ngl);

/* With a GPU requested (ngl != 0), fail early when there is none: 0 or EXIT_USAGE. */
int gpu_args_probe(const char *cmd, long ngl);

/*
 * Move ctx to the GPU when ngl asks for it (ngl < 0 means --gpu): 0 (info
 * filled, or ngl 0 and nothing done), else an exit code with the one-line
 * message printed: EXIT_USAGE for no GPU or a partial -ngl, 1 for too
 * little VRAM or a CUDA failure.
 */
int gpu_args_attach(const char *cmd, struct tm_ctx *ctx, long ngl, struct tm_gpu_info *info);

#endif
