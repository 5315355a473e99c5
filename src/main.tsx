import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App';
import { useStudio } from './ui/store';
import './ui/styles.css';

// Dev server only: the store on window, for debugging from the console and from test harnesses.
if (import.meta.env.DEV) (window as unknown as { __studio: typeof useStudio }).__studio = useStudio;

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
