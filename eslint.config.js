import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', '**/dist/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    // The verifier is a package of its own: resource servers install it without the service, so it may
    // import jose, Node's standard library and its own files, never latchkey's internals.
    files: ['packages/verifier/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../../*', '**/src/*', 'latchkey', 'latchkey/*'], message: 'the verifier package stands alone: import nothing from the service' }] },
      ],
    },
  },
  {
    // The ops console's browser script: tsc (src/admin/console/tsconfig.json, DOM types) already refuses
    // undefined names, and knows the browser's globals, which ESLint's no-undef does not.
    files: ['src/admin/console/**/*.js'],
    rules: { 'no-undef': 'off' },
  },
  {
    files: ['test/**', 'bench/**', 'examples/**'],
    rules: { 'no-console': 'off' },
  },
);
