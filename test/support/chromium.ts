/**
 * Debian's Chromium and the flags it needs to run headless on this kind of machine (as root, with
 * no network: without the background-networking flags it keeps trying to reach Google's hosts).
 */
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
