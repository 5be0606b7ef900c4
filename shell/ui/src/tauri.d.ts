// The part of Tauri's global API (`app.withGlobalTauri`) the UI uses.
interface TauriChannel<T> {
  onmessage: (message: T) => void;
}
interface Window {
  __TAURI__: {
    core: {
      invoke<T>(command: string, args?: Record<string, unknown>): Promise<T>;
      Channel: new <T>() => TauriChannel<T>;
    };
  };
}
