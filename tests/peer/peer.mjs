// SPDX-License-Identifier: MIT
//
// llama.cpp as every peer script here opens it: node-llama-cpp at the pinned
// version from $BUILD/peer (scripts/deps installs it), CPU only, prebuilt
// binaries, no downloads, and maxThreads 0 so a context uses exactly the
// threads it asks for. One place, so the scripts cannot drift apart.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const build = process.env.BUILD || path.resolve(here, "../../build");
export const pkg = path.join(build, "peer/node_modules/node-llama-cpp");
export const NLC_VERSION = "3.22.1";

// { nlc, llama }, or an Error whose message says how to fix the install.
// llama.cpp's own log lines go to logLines, to explain a later failure.
export async function openPeer(logLines) {
	let version;
	try {
		version = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version;
	} catch {
		throw new Error(`node-llama-cpp is not installed in ${build}/peer (run scripts/deps)`);
	}
	if (version !== NLC_VERSION)
		throw new Error(`node-llama-cpp ${version} in ${pkg}, expected ${NLC_VERSION} (run scripts/deps)`);
	const nlc = await import(pathToFileURL(path.join(pkg, "dist/index.js")).href);
	const llama = await nlc.getLlama({
		gpu: false,
		build: "never",
		usePrebuiltBinaries: true,
		progressLogs: false,
		maxThreads: 0,
		logLevel: nlc.LlamaLogLevel.warn,
		logger: (level, message) => logLines.push(`${level}: ${message.trimEnd()}`),
	});
	return { nlc, llama };
}

// The CPU variant library ggml loaded into this process (libggml-cpu-VARIANT.so,
// e.g. "sapphirerapids", the AMX one), from the process's own mappings; null
// where none is mapped or /proc is not there.
export function cpuVariant() {
	try {
		const m = fs.readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
		return m ? m[1] : null;
	} catch {
		return null;
	}
}
