/*
 * What a firmware engineer copies: feed feature frames to an edge_str C export and print the
 * class of each utterance.
 *
 * Input: a text file with one frame per line (MODEL_FEATURES numbers: the raw log-mel values
 * the model was trained on; the normaliser is inside the model) and an empty line after each
 * utterance. For every utterance the program resets the state, steps through its frames and
 * computes the logits once, at the end, as a device does when a decision is due:
 *
 *     utterance 0: class 3 (yes), logit 4.125
 *
 * Build with the Makefile beside this file (it names the model: -DMODEL=fastgrnn
 * -DMODEL_UC=FASTGRNN -DMODEL_HEADER='"fastgrnn.h"'). On a device, replace the file reading by
 * the front end and keep the three calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include MODEL_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(MODEL, name)    /* FN(_step): fastgrnn_step */
#define DEF(name) CAT(MODEL_UC, name) /* DEF(_FEATURES): FASTGRNN_FEATURES */

#define FEATURES DEF(_FEATURES)
#define CLASSES DEF(_CLASSES)

/* A raw feature value as the model's step takes it: float, or Q(INPUT_FRAC_BITS) int16. */
static FN(_input_t) to_input(double value)
{
#if DEF(_INTEGER)
    double q = value * (double)(1L << DEF(_INPUT_FRAC_BITS));
    q = q > 32767.0 ? 32767.0 : (q < -32767.0 ? -32767.0 : q);
    return (FN(_input_t))(q < 0 ? q - 0.5 : q + 0.5);
#else
    return (FN(_input_t))value;
#endif
}

static double logit_value(FN(_logit_t) logit)
{
#if DEF(_INTEGER)
    return (double)logit / (double)(1L << DEF(_LOGIT_FRAC_BITS));
#else
    return (double)logit;
#endif
}

static void decide(FN(_state) * state, long utterance)
{
    FN(_logit_t) logits[CLASSES];
    int best = 0, c;
    FN(_logits)(state, logits);
    for (c = 1; c < CLASSES; ++c) {
        if (logits[c] > logits[best]) {
            best = c;
        }
    }
#if DEF(_HAS_CLASS_NAMES)
    printf("utterance %ld: class %d (%s), logit %.4f\n", utterance, best,
           FN(_class_names)[best], logit_value(logits[best]));
#else
    printf("utterance %ld: class %d, logit %.4f\n", utterance, best, logit_value(logits[best]));
#endif
}

int main(int argc, char **argv)
{
    static char line[16384];
    FN(_state) state;
    FN(_input_t) frame[FEATURES];
    long utterance = 0, frames = 0, number = 0;
    FILE *in;
    if (argc != 2) {
        fprintf(stderr, "usage: %s FRAMES.txt\n", argv[0]);
        return 2;
    }
    in = fopen(argv[1], "r");
    if (in == NULL) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 2;
    }
    FN(_reset)(&state);
    while (fgets(line, sizeof line, in) != NULL) {
        char *p = line, *end;
        int f;
        ++number;
        if (strspn(line, " \t\r\n") == strlen(line)) { /* an empty line ends an utterance */
            if (frames > 0) {
                decide(&state, utterance++);
                FN(_reset)(&state);
                frames = 0;
            }
            continue;
        }
        for (f = 0; f < FEATURES; ++f) {
            double value = strtod(p, &end);
            if (end == p) {
                fprintf(stderr, "%s:%ld: expected %d numbers\n", argv[1], number, FEATURES);
                return 1;
            }
            frame[f] = to_input(value);
            p = end;
        }
        FN(_step)(&state, frame);
        ++frames;
    }
    if (frames > 0) {
        decide(&state, utterance);
    }
    fclose(in);
    return 0;
}
