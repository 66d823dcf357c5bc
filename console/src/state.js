// A tiny observable value: stores outside the component tree (the socket, the chat) notify the
// components that read them, so state survives re-renders and route changes.
import { useEffect, useState } from "preact/hooks";

export function signal(initial) {
  let value = initial;
  const listeners = new Set();
  return {
    get: () => value,
    set(next) {
      value = next;
      for (const listener of [...listeners]) listener(value);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Re-render the calling component whenever one of `sources` (signals or stores) changes. */
export function useSignals(...sources) {
  const [, bump] = useState(0);
  useEffect(() => {
    const offs = sources.map((source) => source.subscribe(() => bump((n) => n + 1)));
    return () => offs.forEach((off) => off());
  }, sources);
}
