// After tsc: the package's bin targets (package.json "bin") are executables.
// tsc writes them 0644, and npm only sets the mode of bins it installs from
// a registry, not of this checkout's own — so `npx settle` in a fresh clone
// would be "Permission denied".
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
for (const target of Object.values(pkg.bin ?? {})) chmodSync(path.join(root, target), 0o755);
