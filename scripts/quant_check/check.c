// Checks a quantised whisper ggml file against ggml itself: the header is the f16
// file's but for ftype; each tensor whisper.cpp's `quantize` would quantise (2-D,
// not the conv biases or positional embeddings) holds exactly the bytes
// ggml_quantize_chunk makes of the f16 one; every other tensor is copied as is.
// Usage: check F16_FILE QUANTISED_FILE (scripts/quant_check.sh builds and runs it).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "ggml.h"
static unsigned char *slurp(const char *p, long *n){FILE*f=fopen(p,"rb");fseek(f,0,SEEK_END);*n=ftell(f);fseek(f,0,SEEK_SET);unsigned char*b=malloc(*n);fread(b,1,*n,f);fclose(f);return b;}
static int32_t rd(unsigned char*b,long*o){int32_t v;memcpy(&v,b+*o,4);*o+=4;return v;}
static long skip_header(unsigned char*b,int32_t*ftype){long o=4;int32_t h[11];for(int i=0;i<11;i++)h[i]=rd(b,&o);*ftype=h[10];int32_t nm=rd(b,&o),nf=rd(b,&o);o+=4L*nm*nf;int32_t nv=rd(b,&o);for(int i=0;i<nv;i++){int32_t l=rd(b,&o);o+=l;}return o;}
int main(int argc,char**argv){long na,nb;unsigned char*a=slurp(argv[1],&na),*b=slurp(argv[2],&nb);int32_t fa,fb;long oa=skip_header(a,&fa),ob=skip_header(b,&fb);
 if(oa!=ob||memcmp(a+4,b+4,40)!=0||memcmp(a+48,b+48,oa-48)!=0){printf("header differs\n");return 1;}
 printf("ftype %d -> %d\n",fa,fb);int nt=0,nq=0,bad=0;
 while(oa<na){int32_t nd=rd(a,&oa),ln=rd(a,&oa),ta=rd(a,&oa);int32_t ne[4]={1,1,1,1};long nel=1;for(int i=0;i<nd;i++){ne[i]=rd(a,&oa);nel*=ne[i];}char name[256]={0};memcpy(name,a+oa,ln);oa+=ln;
  int32_t nd2=rd(b,&ob),ln2=rd(b,&ob),tb=rd(b,&ob);for(int i=0;i<nd2;i++)rd(b,&ob);ob+=ln2;
  size_t sa=nel*(ta==0?4:2);
  // whisper.cpp quantize's rule
  int q = nd==2 && strcmp(name,"encoder.conv1.bias")&&strcmp(name,"encoder.conv2.bias")&&strcmp(name,"encoder.positional_embedding")&&strcmp(name,"decoder.positional_embedding");
  int want = q ? (fb%1000==7?GGML_TYPE_Q8_0:GGML_TYPE_Q5_1) : ta;
  if(tb!=want){printf("%s: type %d, want %d\n",name,tb,want);bad++;}
  size_t sb;
  if(q){float*f=malloc(nel*4);ggml_fp16_to_fp32_row((ggml_fp16_t*)(a+oa),f,nel);void*w=malloc(nel*4);sb=ggml_quantize_chunk(want,f,w,0,nel/ne[0],ne[0],NULL);if(memcmp(w,b+ob,sb)){printf("%s: bytes differ\n",name);bad++;}free(f);free(w);nq++;}
  else {sb=sa;if(memcmp(a+oa,b+ob,sa)){printf("%s: copy differs\n",name);bad++;}}
  oa+=sa;ob+=sb;nt++;}
 printf("%d tensors, %d quantised, %d differences, ends %s\n",nt,nq,bad,ob==nb?"together":"apart");return bad!=0||ob!=nb;}
