// What the serve suites' Node scripts share: TAP lines numbered on from the
// number the suite passes (it reads "# last N" back to go on counting), and
// the test-only npm packages, which scripts/deps installs in NODE_DIR
// (build/serve-test), not beside these files.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// An npm package from NODE_DIR.
export const npm = async (name) => import(pathToFileURL(createRequire(process.env.NODE_DIR + '/').resolve(name)).href);

// ok(cond, what) prints one TAP line (prefix before what) and returns cond; done() prints the last number and exits.
export function tap(start, prefix = '') {
	let n = Number(start || 1) - 1, failed = 0;

	return {
		ok(cond, what) {
			n++;
			if (!cond)
				failed++;
			console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${prefix}${what}`);
			return cond;
		},
		done() {
			console.log(`# last ${n}`);
			process.exit(failed ? 1 : 0);
		},
	};
}
