// Seeded generator of reference/hypothesis pairs for the metrics parity test.
// The corpus is meant to hit every branch of the Whisper normalizers (numbers,
// currencies, contractions, British spellings, fillers, brackets, odd whitespace,
// diacritics, CJK) and a spread of substitution/insertion/deletion patterns.

import { mulberry32 } from '../support/random';

export interface Pair {
  ref: string;
  hyp: string;
  language: string;
}

/** mulberry32 (the tests' shared seeded PRNG). */
export const prng = mulberry32;

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const chance = (rng: Rng, p: number) => rng() < p;

// Each entry: [written form, ...spoken/alternative forms an ASR system might output].
const EN_VARIANTS: string[][] = [
  ['$20', 'twenty dollars', '20 dollars', '$ 20'],
  ['$20 million', 'twenty million dollars', '$20,000,000'],
  ['£5.50', 'five pounds fifty', '5.50 pounds', '£5.5'],
  ['€3', 'three euros', '3 euro'],
  ['5 cents', 'five cents', '¢5'],
  ['$2.07', 'two dollars and seven cents', '$2 and 7 cents', '2 dollars 7 cents'],
  ['$0.50', 'fifty cents', '$.50', 'zero dollars and fifty cents'],
  ['$1', 'one dollar', 'a dollar'],
  ['1,000,000', 'one million', 'a million', '1000000'],
  ['3.14', 'three point one four', '3 point 14'],
  ['0.5', 'zero point five', 'point five', 'oh point five'],
  ['two and a half', '2.5', 'two point five', '2 and a half'],
  ['a hundred and a half', 'one hundred and a half', '100.5'],
  ['50%', 'fifty percent', '50 per cent', 'fifty per cent'],
  ['the 1990s', 'the nineteen nineties', 'the 90s', 'the nineties'],
  ['2024', 'twenty twenty four', 'two thousand twenty four', 'two thousand and twenty four'],
  ['1st', 'first', 'one st'],
  ['21st', 'twenty first', 'twenty-first'],
  ['32nd', 'thirty second', 'thirty-second'],
  ['100th', 'one hundredth', 'hundredth'],
  ['105', 'one hundred and five', 'a hundred five'],
  ['007', 'double oh seven', 'double 0 7', 'zero zero seven'],
  ['101', 'one oh one', 'one zero one'],
  ['-5', 'minus five', 'negative five', 'minus 5'],
  ['+3', 'plus three', 'positive three'],
  ['12:30', 'twelve thirty', 'half past twelve'],
  ['3rd', 'third', 'three rd'],
  ['ones', '1s', "one's"],
  ['one', '1', 'won'],
  ['9th', 'ninth', 'nineth', 'nine th'],
  ['sixes', '6s', "six's"],
  ['twenties', '20s', 'the twenties'],
  ['millions', '1000000s', 'million'],
  ['1.5 million', 'one point five million', 'one and a half million', '1,500,000'],
  ['1.2.3.4', 'one point two point three point four', '1 point 2 point 3 point 4'],
  ['ninety-nine', '99', 'ninety nine'],
  ['2,500', 'two thousand five hundred', 'twenty five hundred'],
  ['eleven thousand', '11,000', 'eleven k'],
  ['three triple five', '3555', 'three five five five'],
  ['the 4th of July', 'the fourth of july', '4 July'],
  ['70s', 'seventies', 'the seventies'],
  ['1000s', 'thousands', 'one thousands'],
  ['zeroth', '0th', 'zero th'],
  ['twelfth', '12th', 'twelve th'],
  ["I'm", 'I am', 'im', "I 'm"],
  ["won't", 'will not', 'wont'],
  ["can't", 'cannot', 'can not'],
  ["it's", 'it is', 'its', "it 's"],
  ["they've", 'they have'],
  ["we'd been", 'we had been', "we'd"],
  ["she's gone", 'she has gone', 'she is gone'],
  ["he's got", 'he has got', "he's gotten"],
  ["y'all", 'you all', "ya'll"],
  ['gonna', 'going to'],
  ['wanna', 'want to'],
  ['gotta', 'got to'],
  ["let's", 'let us', 'lets'],
  ["she'll", 'she will'],
  ["ma'am", 'madam', 'mam'],
  ["don't", 'do not', 'dont'],
  ["isn't", 'is not'],
  ["I'd", 'I would', 'I had'],
  ["ain't", 'aint', 'is not'],
  ['imma', "I'ma", 'I am going to'],
  ['coulda', 'could have', "could've"],
  ['colour', 'color'],
  ['organise', 'organize'],
  ['behaviour', 'behavior'],
  ['centre', 'center'],
  ['travelled', 'traveled'],
  ['analyse', 'analyze'],
  ['theatre', 'theater'],
  ['defence', 'defense'],
  ['programme', 'program'],
  ['grey', 'gray'],
  ['favourite', 'favorite'],
  ['neighbour', 'neighbor'],
  ['licence', 'license'],
  ['jewellery', 'jewelry'],
  ['Mr. Smith', 'mister smith', 'Mr Smith'],
  ['Dr. Jones', 'doctor jones', 'Dr Jones'],
  ['St. Louis', 'saint louis', 'St Louis'],
  ['Mrs. Brown', 'missus brown', 'Mrs Brown'],
  ['Prof. Lee Jr.', 'professor lee junior'],
  ['Lt. Col. Reed', 'lieutenant colonel reed'],
  ['well-known', 'well known', 'wellknown'],
  ['e-mail', 'email', 'e mail'],
  ['co-operate', 'cooperate', 'coöperate'],
  ['naïve café', 'naive cafe', 'naïve cafe'],
  ['Œuvre', 'oeuvre', 'ouvre'],
  ['straße', 'strasse', 'strase'],
  ["O'Brien", 'o brien', 'obrien'],
  ["rock 'n' roll", 'rock and roll', 'rock n roll'],
  ['a.m.', 'am', 'a m'],
  ['U.S.A.', 'usa', 'u s a'],
  ['[laughter]', '', 'laughter'],
  ['<unk>', '', 'unk'],
  ['(inaudible)', '', 'inaudible'],
  ['uh', '', 'uh,'],
  ['um', '', 'umm'],
  ['hmm', '', 'hm'],
  ['mhm', '', 'mm-hmm'],
  ['constructor', 'constructors', 'construct'],
  ['__proto__', 'proto', 'prototype'],
  ['toString', 'to string', 'tostring'],
  ['hasOwnProperty', 'has own property'],
  ['½', '1/2', 'one half'],
  ['Ｆｕｌｌｗｉｄｔｈ １２３', 'fullwidth 123', 'full width one two three'],
  ['٣ apples', '3 apples', 'three apples'],
  ['the 2nd and 3rd', 'the second and third', 'the 2 nd and 3 rd'],
  ['room 4B', 'room four b', 'room 4 b'],
  ['A4 paper', 'a 4 paper', 'a four paper'],
  ['$3.5 billion', 'three point five billion dollars', '3.5 billion dollars'],
  ['£1,250', 'one thousand two hundred fifty pounds', 'twelve fifty pounds'],
  ['€0.99', 'ninety-nine cents', '99 euro cents'],
  // Python's \b is Unicode-aware: "col" in "Colón" is not a whole word there.
  ['Cristóbal Colón', 'cristobal colon', 'Cristóbal Colon'],
  ['Stéphane', 'stephane', 'St. Ephane'],
  ['Genève', 'geneva', 'geneve'],
  ['Revêtement', 'rev etement', 'revetement'],
  ['Umaña', 'um aña', 'umana'],
  // Python `value or ""` treats int 0 as empty.
  ['0 point five', '0.5', 'point five'],
  ['0 oh seven', '007', 'zero oh seven'],
  ['0 double five', '055', 'zero double five'],
  ['0 million', 'zero million', '0'],
];

const EN_WORDS = (
  'the a an of to and in that is was he she it for on with as his her they at be this ' +
  'have from or one had by word but not what all were we when your can said there use ' +
  'each which do how their if will up other about out many then them these so some ' +
  'would make like him into time has look two more write go see number no way could ' +
  'people my than first water been call who oil its now find long down day did get come ' +
  'made may part over new sound take only little work know place year live me back give ' +
  'most very after thing our just name good sentence man think say great where help ' +
  'through much before line right too mean old any same tell boy follow came want show ' +
  'also around form three small set put end does another well large must big even such ' +
  'because turn here why ask went men read need land different home us move try kind ' +
  'hand picture again change off play spell air away animal house point page letter ' +
  'mother answer found study still learn should America world high every near add food ' +
  'between own below country plant last school father keep tree never start city earth ' +
  "eye light thought head under story saw left don't few while along might close " +
  'something seem next hard open example begin life always those both paper together ' +
  'got group often run important until children side feet car mile night walk white sea'
).split(' ');

const PUNCT_AFTER = [',', '.', '!', '?', ';', ':', '...', ' -', '\u2014', '"', "'"];

function casing(rng: Rng, w: string): string {
  const r = rng();
  if (r < 0.08) return w.toUpperCase();
  if (r < 0.25) return w.charAt(0).toUpperCase() + w.slice(1);
  return w;
}

function englishSentence(rng: Rng): { ref: string[]; alt: string[][] } {
  // Token slots: each slot has the reference text and a list of alternatives.
  const ref: string[] = [];
  const alt: string[][] = [];
  const n = 3 + Math.floor(rng() * 12);
  for (let i = 0; i < n; i++) {
    if (chance(rng, 0.35)) {
      const v = pick(rng, EN_VARIANTS);
      ref.push(v[0]);
      alt.push(v.slice(1));
    } else {
      const w = pick(rng, EN_WORDS);
      ref.push(w);
      alt.push([]);
    }
  }
  return { ref, alt };
}

function decorate(rng: Rng, words: string[], punctP: number): string {
  const seps = ['  ', '\t', '\u00a0', '\n', ' \u3000', '\u2003'];
  let s = '';
  words.forEach((w, i) => {
    if (i > 0) s += chance(rng, 0.04) ? pick(rng, seps) : ' ';
    s += casing(rng, w);
    if (chance(rng, punctP)) s += pick(rng, PUNCT_AFTER);
  });
  if (chance(rng, 0.5)) s += pick(rng, ['.', '!', '?', '…']);
  if (chance(rng, 0.05)) s = ' ' + s + '  ';
  return s;
}

/** Word-level perturbation: alternatives, substitutions, deletions, insertions. */
function perturb(rng: Rng, ref: string[], alt: string[][], vocab: readonly string[], errRate: number): string[] {
  const out: string[] = [];
  ref.forEach((w, i) => {
    const r = rng();
    if (alt[i].length > 0 && r < 0.45) out.push(pick(rng, alt[i]));
    else if (r < 0.45 + errRate * 0.4) out.push(pick(rng, vocab));
    else if (r < 0.45 + errRate * 0.7) {
      /* deletion */
    } else out.push(w);
    if (chance(rng, errRate * 0.3)) out.push(pick(rng, [...vocab.slice(0, 20), 'uh', 'um', 'hmm']));
  });
  return out.filter((w) => w !== '');
}

// Random runs of number words to exercise the number normalizer's state machine.
const NUMBER_WORDS = (
  'zero oh o one two three four five six seven eight nine ten eleven twelve thirteen fifteen ' +
  'nineteen twenty thirty forty fifty ninety hundred thousand million billion trillion ' +
  'decillion first second third fifth ninth nineth twelfth twentieth hundredth thousandth ' +
  'millionth ones twos sixes twenties thirties hundreds thousands millions and and point ' +
  'point double triple minus plus negative positive dollars dollar pounds euros cents cent ' +
  'percent per cent a half and a half 0 1 7 12 20 100 3.5 0.25 1.0 007 $5 £3 €7.50 ¢9 ' +
  '5% s st nd th apples the of'
).split(' ');

function numberSalad(rng: Rng): string[] {
  const n = 2 + Math.floor(rng() * 10);
  return Array.from({ length: n }, () => pick(rng, NUMBER_WORDS));
}

const EU_SENTENCES: Record<string, string[]> = {
  de: [
    'Über die Straße gehen wir heute nicht, weil es regnet.',
    'Die Mädchen aßen fünf Äpfel und tranken Müsli-Milch.',
    '„Größer ist nicht immer besser“, sagte der Bäcker.',
    'Wir fahren am 3. Oktober nach Köln – oder nach Düsseldorf?',
    'Das Frühstück kostet 12,50 € pro Person.',
    'Ich weiß nicht, ob Jürgen schon zu Hause ist.',
  ],
  es: [
    '¿Dónde está la estación de tren más cercana?',
    '¡Qué día tan bonito! El niño juega en el jardín.',
    'La canción «Más allá» habla de un corazón roto.',
    'Mañana iremos a León con mis compañeros.',
    'El señor Núñez pagó 20 € por la cena.',
    'Él no sabía qué decir después de la reunión.',
  ],
  it: [
    'Perché è già così tardi? Non ho ancora mangiato.',
    "L'università è chiusa per le vacanze di Pasqua.",
    'Può darsi che lui arrivi più tardi, verso le 8.',
    "C'è un caffè qui vicino che fa un ottimo tiramisù.",
    'Lunedì andrò a Forlì con mia sorella.',
    "Quest'anno la città ha speso 3 milioni di euro.",
  ],
};

const EU_WORDS = 'und der die das ist nicht la el de que en y non che il di è un per casa tiempo'.split(' ');

function stripDiacritics(w: string): string {
  return w.normalize('NFD').replace(/\p{Mn}/gu, '');
}

const ZH_SENTENCES = [
  '我们今天用Python写code，然后deploy到server上。',
  '这个API的response time太慢了，需要optimize一下。',
  '请把meeting改到下午三点，我有一个deadline。',
  '他用iPhone拍了很多照片，然后发到WeChat群里。',
  '我们的model在GPU上训练了三天才converge。',
  '你可以check一下这个bug吗？谢谢！',
  '今天的weather很好，我们去park散步吧。',
  '这个project的budget是五百万。',
  '老师说homework要在Friday之前交。',
  '我觉得这个design有点too complicated了。',
  'ＡＰＩ文档在ｇｉｔｈｕｂ上，版本是２．０。',
  '《机器学习》这本书很有意思（推荐）。',
  '𠮷野家的牛丼很好吃，𝐁𝐔𝐓 a bit expensive。',
];

const ZH_CHARS =
  '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长';
const EN_CODE_WORDS = ['python', 'code', 'server', 'api', 'model', 'gpu', 'bug', 'deadline', 'meeting', 'ok', 'app'];

const JA_SENTENCES = [
  '今日はとても暑いですね。アイスクリームを食べましょう！',
  '東京タワーは、スカイツリーより古いです。',
  'このプログラムはPythonで書かれています。',
  'ｶﾀｶﾅの半角文字も正規化されます。',
  '明日の会議は10時からです、よろしくお願いします。',
];

/** Split into the units a transcriber would get wrong: CJK chars and Latin runs. */
function cjkUnits(s: string): string[] {
  return (
    s.match(/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}ー]|[^\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}ー]+/gu) ?? []
  );
}

function perturbCjk(rng: Rng, s: string, errRate: number): string {
  const units = cjkUnits(s);
  const out: string[] = [];
  for (const u of units) {
    const r = rng();
    const isCjk = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}ー]$/u.test(u);
    if (r < errRate * 0.4) out.push(isCjk ? pick(rng, [...ZH_CHARS]) : ' ' + pick(rng, EN_CODE_WORDS) + ' ');
    else if (r < errRate * 0.7) {
      /* deletion */
    } else if (!isCjk && chance(rng, 0.3)) out.push(u.toUpperCase());
    else out.push(u);
    if (chance(rng, errRate * 0.2)) out.push(pick(rng, [...ZH_CHARS]));
  }
  let h = out.join('');
  if (chance(rng, 0.3)) h = h.replace(/[，。！？、]/g, chance(rng, 0.5) ? ' ' : '');
  return h;
}

export function generateCorpus(seed: number, size: number): Pair[] {
  const rng = prng(seed);
  const pairs: Pair[] = [];
  const push = (ref: string, hyp: string, language: string) => {
    // ~5% empty hypotheses (e.g. the model output nothing).
    pairs.push({ ref, hyp: chance(rng, 0.05) ? '' : hyp, language });
  };

  // Fixed edge cases first.
  pairs.push({ ref: '', hyp: '', language: 'en' });
  pairs.push({ ref: '', hyp: 'something was said', language: 'en' });
  pairs.push({ ref: '[noise] um, uh.', hyp: 'hmm', language: 'en' });
  pairs.push({ ref: '(music)', hyp: 'music playing', language: 'en' });
  pairs.push({ ref: 'hello world', hyp: '', language: 'en' });
  pairs.push({ ref: 'a b', hyp: 'b c', language: 'en' });
  pairs.push({ ref: '', hyp: '有人说话', language: 'zh' });
  pairs.push({ ref: 'tab\tseparated  and\u0085nel\u001cfs', hyp: 'tab separated and nel fs', language: 'de' });
  // Python str.split() splits on U+0085/U+001C but not on U+FEFF (JS \s is the opposite).
  pairs.push({ ref: 'it costs 5\u0085dollars and\u001ctwenty\u001fcents', hyp: 'it costs twenty\ufeffdollars', language: 'en' });
  // Astral code points must count as one character (Python str indexing), not two UTF-16 units.
  pairs.push({ ref: '𠮷野家的牛丼', hyp: '吉野家的牛丼𠀀', language: 'zh' });

  const shares: [number, () => void][] = [
    [
      0.5,
      () => {
        const { ref, alt } = englishSentence(rng);
        const err = pick(rng, [0, 0.1, 0.2, 0.4]);
        push(
          decorate(rng, ref, 0.15),
          decorate(rng, perturb(rng, ref, alt, EN_WORDS, err), 0.1),
          pick(rng, ['en', 'en', 'english', 'en-GB']),
        );
      },
    ],
    [
      0.12,
      () => {
        const ref = numberSalad(rng);
        const hyp = chance(rng, 0.5)
          ? numberSalad(rng)
          : perturb(
              rng,
              ref,
              ref.map(() => []),
              NUMBER_WORDS,
              0.3,
            );
        push(ref.join(' '), hyp.join(' '), 'en');
      },
    ],
    [
      0.16,
      () => {
        const lang = pick(rng, ['de', 'es', 'it']);
        const sent = pick(rng, EU_SENTENCES[lang]);
        const words = sent.split(' ');
        const alt = words.map((w) => [stripDiacritics(w), w.toLowerCase(), w.replace(/[.,!?¿¡«»„“]/g, '')]);
        const hyp = perturb(rng, words, alt, EU_WORDS, pick(rng, [0, 0.15, 0.3]));
        push(sent, hyp.join(chance(rng, 0.1) ? '  ' : ' '), lang);
      },
    ],
    [
      0.16,
      () => {
        const ref = pick(rng, ZH_SENTENCES);
        push(ref, perturbCjk(rng, ref, pick(rng, [0, 0.1, 0.2, 0.4])), pick(rng, ['zh', 'zh', 'chinese']));
      },
    ],
    [
      0.06,
      () => {
        const ref = pick(rng, JA_SENTENCES);
        push(ref, perturbCjk(rng, ref, pick(rng, [0.1, 0.3])), 'ja');
      },
    ],
  ];
  while (pairs.length < size) {
    let r = rng();
    for (const [share, make] of shares) {
      if (r < share) {
        make();
        break;
      }
      r -= share;
    }
  }
  return pairs;
}
