"use strict";
// Preloaded (node --require) into the Prisma CLI by prisma.sh and the tests. Changes when the CLI exits,
// nothing else.
//
// The WASM schema engine arms a 10 s timer for its advisory-lock timeout and never clears it, so every
// `migrate deploy` would sit idle for 10 s after finishing (the native engine, a separate process, exits
// at once). Long timers are unref'd: they still fire while the CLI waits on the database (a pending query
// keeps the process alive, so the 10 s lock timeout, P1002, behaves as before), but no longer keep a
// finished CLI from exiting.
const setTimeoutOriginal = global.setTimeout;
global.setTimeout = function setTimeoutUnrefLong(callback, delay, ...args) {
  const timer = setTimeoutOriginal(callback, delay, ...args);
  if (Number(delay) >= 1000 && timer && typeof timer.unref === "function") timer.unref();
  return timer;
};
