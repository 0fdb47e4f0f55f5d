/**
 * Values keyed by UDP source (port, address text), looked up per datagram
 * without building a key string: a map per port, then per address. Used by
 * the media engine (sessions) and federation media (links).
 */
export class AddressMap<T> {
  private readonly byPort = new Map<number, Map<string, T>>();

  get(port: number, address: string): T | undefined {
    return this.byPort.get(port)?.get(address);
  }

  set(port: number, address: string, value: T): void {
    let inner = this.byPort.get(port);
    if (inner === undefined) {
      inner = new Map();
      this.byPort.set(port, inner);
    }
    inner.set(address, value);
  }

  /** Removes the entry only if it still holds `value` (another may have taken the address). */
  deleteIf(port: number, address: string, value: T): void {
    const inner = this.byPort.get(port);
    if (inner !== undefined && inner.get(address) === value) {
      inner.delete(address);
      if (inner.size === 0) {
        this.byPort.delete(port);
      }
    }
  }
}
