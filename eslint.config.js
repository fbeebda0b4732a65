import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  {
    // CLIs, tests and benchmarks talk to a terminal on purpose.
    files: [
      '**/src/cli/**',
      '**/src/main.ts',
      '**/src/*-main.ts',
      'test/**',
      'bench/**',
      'scripts/**',
      '**/bin/**',
    ],
    rules: { 'no-console': 'off' },
  },
);
