// The studio's state (zustand). Components read slices; actions live in src/ui/actions.ts.
import { create } from 'zustand';
import type { GpuCapabilities } from '../gpu/device';
import type { LoadProgress } from '../pipeline/transcriber';
import type { ModelInfo } from '../worker/protocol';
import type { TranscriptMsg } from '../worker/client';

export interface DemoClip {
  id: string;
  file: string;
  url: string;
  text: string;
  language: string;
  languages?: string[];
  duration: number;
  domain: string;
}

export interface ClipResult {
  status: 'decoding' | 'running' | 'done' | 'error';
  transcript?: TranscriptMsg;
  wer?: number;
  error?: string;
}

export interface StudioState {
  gpu: { status: 'probing' | 'webgpu' | 'none'; caps?: GpuCapabilities; reason?: string };
  model: {
    status: 'idle' | 'loading' | 'ready' | 'error';
    label?: string;
    progress?: LoadProgress & { stageStartedAt: number };
    info?: ModelInfo;
    error?: string;
  };
  clips: DemoClip[];
  clipsError?: string;
  results: Record<string, ClipResult>;
  set: (partial: Partial<StudioState>) => void;
  setResult: (id: string, r: ClipResult) => void;
}

export const useStudio = create<StudioState>((set) => ({
  gpu: { status: 'probing' },
  model: { status: 'idle' },
  clips: [],
  results: {},
  set: (partial) => set(partial),
  setResult: (id, r) => set((s) => ({ results: { ...s.results, [id]: r } })),
}));
