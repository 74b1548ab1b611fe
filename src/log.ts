// Structured JSON logs (pino) to stdout; every request logs through a child carrying its request id.
import { pino, type Logger } from 'pino';

export interface LogOptions {
  readonly level: string;
  readonly fields?: Readonly<Record<string, string | number | boolean>>;
}

export function createLogger(options: LogOptions): Logger {
  return pino({
    level: options.level,
    base: { service: 'berth', ...options.fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
