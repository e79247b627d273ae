/* SPDX-License-Identifier: MIT */
/*
 * The GPU options of run and logits: --gpu, llama.cpp's -ngl N
 * (--n-gpu-layers N) and -ot REGEX=PLACE (--override-tensor). Layers go to
 * the GPU all or none: -ngl 0 is the CPU, -ngl N with N at least the
 * model's layer count (llama.cpp users write 999) is the GPU, anything
 * between is refused; what stays in host memory is said per tensor with -ot
 * (tiermem/gpu.h: CPU for the hybrid's routed experts, pcie).
 */
#ifndef TIERMEM_CLI_GPU_ARGS_H
#define TIERMEM_CLI_GPU_ARGS_H

#include "tiermem/gpu.h"
#include "tiermem/model.h"
#include "tiermem/plan.h"

#define GPU_ARGS_HELP \
	"  --gpu              run every layer on the GPU (CUDA), all weights in VRAM\n" \
	"  -ngl, --n-gpu-layers N  llama.cpp's spelling: 0 the CPU (default), N >= the\n" \
	"                     model's layers (e.g. 999) the same as --gpu\n" \
	"  -ot, --override-tensor REGEX=PLACE  with --gpu, tensors whose name matches stay\n" \
	"                     in host memory: PLACE CPU (llama.cpp's -ot exps=CPU: routed\n" \
	"                     experts computed by the CPU where they live, the hidden state\n" \
	"                     copied per MoE layer) or pcie (read in place by the GPU from\n" \
	"                     pinned host memory; not fsdax files); VRAM: the default. The\n" \
	"                     first match wins (repeatable). Both are unverified on a GPU\n"

/* The -ot rules of run and logits, and getopt's code for the option. */
#define GPU_ARGS_OT 0x4f54
#define GPU_ARGS_OT_OPTION { "override-tensor", required_argument, NULL, GPU_ARGS_OT }
struct gpu_ot {
	struct tm_override ot[16];
	int n;
};

/* Parse one -ot REGEX=PLACE into o; EXIT_USAGE and a message on bad input, else 0. */
int gpu_args_parse_ot(const char *cmd, const char *s, struct gpu_ot *o);

/* getopt_long has no single-dash long options: rewrite "-ngl" and "-ot" to their long forms first. */
void gpu_args_rewrite(int argc, char **argv);

/* Parse -ngl's value into *ngl; EXIT_USAGE and a message on bad input, else 0. */
int gpu_args_parse_ngl(const char *cmd, const char *s, long *ngl);

/* With a GPU requested (ngl != 0), fail early when there is none: 0 or EXIT_USAGE (also for -ot without one). */
int gpu_args_probe(const char *cmd, long ngl, const struct gpu_ot *ot);

/*
 * Move ctx to the GPU when ngl asks for it (ngl < 0 means --gpu): 0 (info
 * filled, or ngl 0 and nothing done), else an exit code with the one-line
 * message printed: EXIT_USAGE for no GPU or a partial -ngl, 1 for too
 * little VRAM or a CUDA failure. xv: an expert cache in VRAM, or NULL
 * (tm_gpu_attach_xvram).
 */
int gpu_args_attach(const char *cmd, struct tm_ctx *ctx, long ngl, const struct gpu_ot *ot, struct tm_gpu_info *info,
		    struct tm_xvram *xv);

/* After a GPU run of n tokens: the weight bytes per token read from VRAM, over PCIe, and by the CPU (the hybrid). */
void gpu_args_summary(const struct tm_ctx *ctx, int n);

#endif
